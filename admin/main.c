/*
 * main.c — relay-admin's executable: everything else is the admin library (libadm, see
 * admin/meson.build); adm_main() in dispatch.c parses the command line, runs the command
 * and returns its exit code. Only main() exits.
 */
#include "adm.h"

int main(int argc, char **argv)
{
	return adm_main(argc, argv);
}
