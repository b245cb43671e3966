/*
 * check_postfix.c — `relay-admin check`: each relay service's parameters against what
 * `relay-admin setup` writes (TLS, AUTH, restrictions, rate limit, bare newlines, VRFY,
 * ETRN, headers for remote clients), the services behind a proxy, the upstream (relay-upstream transport or an older main.cf layout) and `postfix check`.
 * See check.h.
 */
#include "check.h"
#include "cert.h"
#include "policy.h"
#include "postconf.h"

#include "relay-config.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void expect_param(struct check *c, const struct service *s, const char *id,
                         const char *title, const char *name, const char *want, bool list,
                         bool fail, const char *why)
{
	char cid[320], ctitle[400], got[1024], wanted[1024];
	struct adm_check *ck;
	char *v = chk_pf_service(c, s, name);

	snprintf(cid, sizeof(cid), "%s@%s", id, s->name);
	snprintf(ctitle, sizeof(ctitle), "%s (%s)", title, s->name);
	ck = adm_checklist_add(c->cl, cid, ctitle);
	if (list) {
		chk_normalize_list(v ? v : "", got, sizeof(got));
		chk_normalize_list(want, wanted, sizeof(wanted));
	} else {
		snprintf(got, sizeof(got), "%s", v ? v : "");
		snprintf(wanted, sizeof(wanted), "%s", want);
	}
	free(v);
	if (strcmp(got, wanted) == 0) {
		adm_check_set(ck, ADM_CHECK_OK, "%s = %s", name, got);
		return;
	}
	adm_check_set(ck, fail ? ADM_CHECK_FAIL : ADM_CHECK_WARN, "%s = %s, expected %s: %s", name,
	              got[0] ? got : "(empty)", wanted, why);
	adm_check_fix(ck, "postconf -c %s -P '%s/%s=%s' && postfix -c %s reload (or rerun "
	              "relay-admin setup)", c->dir, s->name, name, want, c->dir);
}

/* SMTP smuggling: with smtpd_forbid_bare_newline off, <LF>.<CR><LF> ends DATA and what
 * follows is read as commands; the exclusions (default $mynetworks) switch it off per
 * client, and for a relay on loopback or a LAN that is every client. */
static void check_bare_newline(struct check *c, const struct service *s)
{
	char cid[320], ctitle[400];
	char *v = chk_pf_service(c, s, "smtpd_forbid_bare_newline");
	char *ex = chk_pf_service(c, s, "smtpd_forbid_bare_newline_exclusions");
	bool on = v && (strcasecmp(v, "normalize") == 0 || strcasecmp(v, "yes") == 0 ||
	                strcasecmp(v, "reject") == 0);

	snprintf(cid, sizeof(cid), "bare-newline@%s", s->name);
	snprintf(ctitle, sizeof(ctitle), "<LF>.<CR><LF> does not end DATA (%s)", s->name);
	struct adm_check *ck = adm_checklist_add(c->cl, cid, ctitle);

	if (!on) {
		adm_check_set(ck, ADM_CHECK_FAIL, "smtpd_forbid_bare_newline = %s: a bare <LF> "
		              "before the final dot ends the message and the rest is read as SMTP "
		              "commands (SMTP smuggling)", v && v[0] ? v : "(empty)");
		adm_check_fix(ck, "postconf -c %s -P '%s/smtpd_forbid_bare_newline=normalize' "
		              "'%s/smtpd_forbid_bare_newline_exclusions=' (or rerun relay-admin "
		              "setup)", c->dir, s->name, s->name);
	} else if (ex && ex[0]) {
		adm_check_set(ck, ADM_CHECK_WARN, "smtpd_forbid_bare_newline = %s, but "
		              "smtpd_forbid_bare_newline_exclusions = %s exempts those clients", v,
		              ex);
		adm_check_fix(ck, "postconf -c %s -P '%s/smtpd_forbid_bare_newline_exclusions=' "
		              "(or rerun relay-admin setup)", c->dir, s->name);
	} else {
		adm_check_set(ck, ADM_CHECK_OK, "smtpd_forbid_bare_newline = %s, no exclusions", v);
	}
	free(v);
	free(ex);
}

static void check_rate_limit(struct check *c, const struct service *s)
{
	char cid[320], ctitle[400];
	char *v = chk_pf_service(c, s, "smtpd_client_auth_rate_limit");
	long n = v ? strtol(v, NULL, 10) : 0;

	snprintf(cid, sizeof(cid), "auth-rate-limit@%s", s->name);
	snprintf(ctitle, sizeof(ctitle), "AUTH rate limit (%s)", s->name);
	struct adm_check *ck = adm_checklist_add(c->cl, cid, ctitle);

	if (n > 0) {
		adm_check_set(ck, ADM_CHECK_OK, "smtpd_client_auth_rate_limit = %ld", n);
	} else {
		adm_check_set(ck, ADM_CHECK_WARN, "smtpd_client_auth_rate_limit = %s: unlimited "
		              "password guessing per client", v && v[0] ? v : "0");
		adm_check_fix(ck, "postconf -c %s -P '%s/smtpd_client_auth_rate_limit=20'", c->dir,
		              s->name);
	}
	free(v);
}

/* Postfix adds a missing Message-ID, Date and From: only for local_header_rewrite_clients;
 * its default (permit_inet_interfaces) leaves out every remote client, whose mail then
 * leaves without them (some upstreams refuse it). A service set up by an earlier version
 * lacks the setting. */
static void check_header_rewrite(struct check *c, const struct service *s)
{
	char cid[320], ctitle[400], list[1024];
	char *v = chk_pf_service(c, s, "local_header_rewrite_clients");
	bool ok = false;

	chk_normalize_list(v ? v : "", list, sizeof(list));
	for (char *w = list, *end; w && *w; w = end ? end + 1 : NULL) {
		end = strchr(w, ',');
		if (end)
			*end = '\0';
		ok = ok || strcmp(w, "permit_sasl_authenticated") == 0;
	}
	snprintf(cid, sizeof(cid), "remote-headers@%s", s->name);
	snprintf(ctitle, sizeof(ctitle), "Message-ID and Date for remote clients (%s)", s->name);
	struct adm_check *ck = adm_checklist_add(c->cl, cid, ctitle);

	if (ok) {
		adm_check_set(ck, ADM_CHECK_OK, "local_header_rewrite_clients = %s", v);
	} else {
		adm_check_set(ck, ADM_CHECK_WARN, "local_header_rewrite_clients = %s: mail from "
		              "clients elsewhere leaves without Message-ID and Date, and a message "
		              "without From: is refused", v && v[0] ? v : "(empty)");
		adm_check_fix(ck, "postconf -c %s -P '%s/local_header_rewrite_clients="
		              "permit_sasl_authenticated' (or rerun relay-admin setup)", c->dir,
		              s->name);
	}
	free(v);
}

void chk_service(struct check *c, const struct service *s, bool *milter)
{
	expect_param(c, s, "tls-required", "TLS required", "smtpd_tls_security_level", "encrypt",
	             false, true, "clients may send passwords and mail in plaintext");
	expect_param(c, s, "auth-only-after-tls", "AUTH only after TLS", "smtpd_tls_auth_only",
	             "yes", false, true, "AUTH is offered before TLS");
	expect_param(c, s, "sasl-enabled", "SASL enabled", "smtpd_sasl_auth_enable", "yes", false,
	             true, "nobody can log in");
	expect_param(c, s, "sasl-noanonymous", "no anonymous AUTH", "smtpd_sasl_security_options",
	             "noanonymous", true, true, "an anonymous login would count as authenticated");
	expect_param(c, s, "client-restrictions", "only logins may send",
	             "smtpd_client_restrictions", RESTRICTIONS_WANT, true, true,
	             "clients that did not log in may be able to relay");
	expect_param(c, s, "relay-restrictions", "relay restricted to logins",
	             "smtpd_relay_restrictions", RESTRICTIONS_WANT, true, true,
	             "clients that did not log in may be able to relay");
	expect_param(c, s, "recipient-restrictions", "recipients restricted to logins",
	             "smtpd_recipient_restrictions", RESTRICTIONS_WANT, true, false,
	             "differs from what setup writes");
	expect_param(c, s, "tls-protocols", "TLS 1.2 or newer", "smtpd_tls_mandatory_protocols",
	             ">=TLSv1.2", false, false, "old TLS versions are accepted");
	check_bare_newline(c, s);
	expect_param(c, s, "vrfy-disabled", "VRFY refused", "disable_vrfy_command", "yes", false,
	             false, "VRFY tells a client which addresses exist");
	expect_param(c, s, "etrn-refused", "ETRN refused", "smtpd_etrn_restrictions", "reject",
	             true, false, "ETRN lets a client make Postfix flush its queue");
	check_header_rewrite(c, s);
	check_rate_limit(c, s);
	chk_certificate(c, s);
	if (chk_milter(c, s))
		*milter = true;
}

/* Whether a service listens on loopback only ("127.0.0.1:10587/inet", "[::1]:587/inet"):
 * then only this machine (the proxy) can reach it; a bare port listens everywhere. */
static bool listens_on_loopback(const char *name)
{
	return strncmp(name, "127.", 4) == 0 || strncmp(name, "[::1]:", 6) == 0 ||
	       strncmp(name, "localhost:", 10) == 0;
}

/* Services behind a TCP load balancer (smtpd_upstream_proxy_protocol = haproxy) take the
 * client's address from the PROXY header of whoever connects; Postfix has no list of
 * trusted proxies, so the item names them and says what must keep others out. Any other
 * non-empty value makes smtpd drop every connection. */
void chk_proxy(struct check *c)
{
	struct adm_check *ck = adm_checklist_add(c->cl, "proxy-protocol",
	                                         "services behind a proxy (PROXY protocol)");
	char behind[1024] = "";
	size_t n = 0, len = 0;
	bool bad = false;

	for (size_t i = 0; i < c->nsvc; i++) {
		const struct service *s = &c->svc[i];
		char *v = chk_pf_service(c, s, "smtpd_upstream_proxy_protocol");

		if (v && strcmp(v, "haproxy") == 0) {
			n++;
			len += (size_t)snprintf(behind + len, len < sizeof behind ? sizeof behind - len : 0,
			                        "%s%s", len ? ", " : "", s->name);
			if (len >= sizeof behind)
				len = sizeof behind - 1;
			adm_check_line(ck, "%s: %s", s->name, listens_on_loopback(s->name) ?
			               "listens on loopback: only this machine can connect" :
			               "reachable from the network: a firewall must let only the "
			               "proxy connect");
		} else if (v && v[0]) {
			bad = true;
			adm_check_set(ck, ADM_CHECK_FAIL, "%s: smtpd_upstream_proxy_protocol = %s: "
			              "Postfix knows only \"haproxy\"; smtpd drops every connection",
			              s->name, v);
			adm_check_fix(ck, "rerun relay-admin setup --proxy-protocol (or without it)");
		}
		free(v);
	}
	if (bad)
		return;
	if (n == 0) {
		adm_check_set(ck, ADM_CHECK_OK, "none: clients connect directly");
		return;
	}
	adm_checklist_info(c->cl, "behind a proxy", behind);
	adm_check_set(ck, ADM_CHECK_OK, "%s read the client address from a PROXY header; "
	              "Postfix trusts any sender of one: only the proxy may reach %s", behind,
	              n == 1 ? "it" : "them");
}

/* An upstream setting: the transport's -o override (else main.cf's), or main.cf's when the
 * upstream is main.cf's relayhost (t == NULL). Never NULL; caller frees. */
static char *up_value(const struct check *c, const struct service *t, const char *name)
{
	char err[256];
	char *v;

	if (t)
		return chk_pf_service(c, t, name);
	v = chk_pf_main(c, name, err, sizeof(err));
	return v ? v : strdup("");
}

static bool is_yes(const char *v)
{
	return v && strcasecmp(v, "yes") == 0;
}

/* The master.cf smtp transport called `name` (the part of content_filter before ':'). */
static const struct service *find_transport(const struct check *c, const char *filter)
{
	size_t len = strcspn(filter, ":");

	for (size_t i = 0; i < c->ntransports; i++) {
		const char *n = c->transports[i].name;   /* "relay-upstream/unix" */

		if (strncmp(n, filter, len) == 0 && strcmp(n + len, "/unix") == 0)
			return &c->transports[i];
	}
	return NULL;
}

/* Where relay mail goes: the services' content_filter -> *filter (caller frees, NULL if
 * none has one); *without: how many services have none. */
static char *relay_filter(const struct check *c, size_t *without, const char **first_without)
{
	char *filter = NULL;

	*without = 0;
	*first_without = NULL;
	for (size_t i = 0; i < c->nsvc; i++) {
		char *v = chk_pf_service(c, &c->svc[i], "content_filter");

		if (v && v[0] && !filter) {
			filter = v;
			continue;
		}
		if (!v || !v[0]) {
			if ((*without)++ == 0)
				*first_without = c->svc[i].name;
		}
		free(v);
	}
	return filter;
}

/* The upstream login must serve only the relay services: in main.cf every delivery —
 * sendmail, a port-25 client in mynetworks — would log in with it, past relay-milter. */
static void check_upstream_scope(struct check *c, const char *filter, const char *relayhost)
{
	struct adm_check *ck = adm_checklist_add(c->cl, "upstream-scope",
	                                         "upstream login only for the relay services");
	char err[256];
	char *auth = chk_pf_main(c, "smtp_sasl_auth_enable", err, sizeof(err));
	char *maps = chk_pf_main(c, "smtp_sasl_password_maps", err, sizeof(err));
	const char *nexthop = filter ? strchr(filter, ':') : NULL;

	nexthop = nexthop ? nexthop + 1 : "";
	if (is_yes(auth) && maps && maps[0]) {
		adm_check_set(ck, ADM_CHECK_FAIL, "main.cf has smtp_sasl_auth_enable = yes and "
		              "smtp_sasl_password_maps = %s: mail from sendmail and from port-25 "
		              "clients logs in upstream with it too, with any sender and no limit "
		              "or audit (the layout of earlier relay-admin setups)", maps);
		adm_check_fix(ck, "rerun relay-admin setup --upstream ... --upstream-user ...: it "
		              "moves the upstream onto the %s transport of the relay services and "
		              "removes these main.cf settings", "relay-upstream");
	} else if (relayhost[0] && (!filter || strcmp(relayhost, nexthop) == 0)) {
		adm_check_set(ck, ADM_CHECK_WARN, "main.cf's relayhost %s is the upstream: mail "
		              "from sendmail and port 25 goes there as well, past relay-milter",
		              relayhost);
		adm_check_fix(ck, "rerun relay-admin setup --upstream ...: the relay services get "
		              "their own transport and main.cf keeps the machine's own routing");
	} else if (!filter) {
		adm_check_set(ck, ADM_CHECK_SKIP, "no upstream: Postfix delivers directly");
	} else {
		adm_check_set(ck, ADM_CHECK_OK, "only the relay services' content_filter leads to "
		              "the upstream; main.cf has no upstream login");
	}
	free(auth);
	free(maps);
}

/* Where the relay services' mail goes: their content_filter's transport (*t), or main.cf's
 * relayhost (an earlier setup's layout, *t NULL). `where` gets the start of the postconf
 * command that would fix a value there. Returns false, with the other three items set to
 * SKIP, when there is no upstream to judge. */
static bool upstream_route(struct check *c, struct adm_check *route,
                           struct adm_check *const rest[3], const char *relayhost,
                           const struct service **t, char *where, size_t wlen)
{
	const char *bare = NULL, *skip = "no upstream";
	size_t without = 0;
	char *filter = relay_filter(c, &without, &bare);   /* as in check_upstream_scope() */
	bool judge = true;

	if (filter && (*t = find_transport(c, filter)) == NULL) {
		adm_checklist_info(c->cl, "upstream", filter);
		adm_check_set(route, ADM_CHECK_FAIL, "content_filter = %s names a transport "
		              "master.cf does not define (unix, smtp): relay mail waits in the "
		              "queue", filter);
		adm_check_fix(route, "rerun relay-admin setup --upstream ... (it defines the "
		              "relay-upstream transport)");
		skip = "no upstream transport";
		judge = false;
	} else if (filter) {
		adm_checklist_info(c->cl, "upstream", filter);
		if (without) {
			adm_check_set(route, ADM_CHECK_WARN, "%s has no content_filter: its mail does "
			              "not go to the upstream (%s does)", bare, filter);
			adm_check_fix(route, "rerun relay-admin setup with the same --port/--tls-port");
		} else {
			adm_check_set(route, ADM_CHECK_OK, "content_filter = %s (transport %s)", filter,
			              (*t)->name);
		}
		snprintf(where, wlen, "postconf -c %s -P '%s/", c->dir, (*t)->name);
	} else if (relayhost[0]) {
		/* an earlier setup's layout: the upstream is main.cf's, judged there */
		adm_checklist_info(c->cl, "relayhost", relayhost);
		adm_check_set(route, ADM_CHECK_WARN, "no content_filter on the relay services: "
		              "their mail follows main.cf's relayhost %s, like all other mail",
		              relayhost);
		adm_check_fix(route, "rerun relay-admin setup --upstream ...");
		snprintf(where, wlen, "postconf -c %s -e '", c->dir);
	} else {
		adm_check_set(route, ADM_CHECK_SKIP, "no upstream: Postfix delivers directly");
		judge = false;
	}
	for (size_t i = 0; i < 3 && !judge; i++)
		adm_check_set(rest[i], ADM_CHECK_SKIP, "%s", skip);
	free(filter);
	return judge;
}

static void upstream_tls(struct check *c, const struct service *t, struct adm_check *ck,
                         const char *where)
{
	char *level = up_value(c, t, "smtp_tls_security_level");

	if (level && (strcmp(level, "secure") == 0 || strcmp(level, "verify") == 0 ||
	              strcmp(level, "dane-only") == 0)) {
		adm_check_set(ck, ADM_CHECK_OK, "smtp_tls_security_level = %s", level);
	} else if (level && strcmp(level, "encrypt") == 0) {
		adm_check_set(ck, ADM_CHECK_WARN, "smtp_tls_security_level = encrypt: encrypted but "
		              "the upstream's certificate is not verified (--upstream-insecure)");
		adm_check_fix(ck, "rerun relay-admin setup without --upstream-insecure (with "
		              "--upstream-ca FILE if the upstream uses a private CA)");
	} else {
		adm_check_set(ck, ADM_CHECK_FAIL, "smtp_tls_security_level = %s: mail and the "
		              "upstream password may cross the network in plaintext",
		              level && level[0] ? level : "(empty)");
		adm_check_fix(ck, "%ssmtp_tls_security_level=secure' (relay-admin setup does)", where);
	}
	free(level);
}

static void upstream_ca(struct check *c, const struct service *t, struct adm_check *ca)
{
	char *cafile = up_value(c, t, "smtp_tls_CAfile");

	if (!cafile || !cafile[0])
		adm_check_set(ca, ADM_CHECK_OK, "not set: OpenSSL's default CAs "
		              "(smtp_tls_CApath / system)");
	else if (access(cafile, R_OK) != 0) {
		adm_check_set(ca, ADM_CHECK_FAIL, "smtp_tls_CAfile %s: %s", cafile, strerror(errno));
		adm_check_fix(ca, "install the CA file or rerun relay-admin setup --upstream-ca FILE");
	} else {
		adm_check_set(ca, ADM_CHECK_OK, "smtp_tls_CAfile = %s", cafile);
	}
	free(cafile);
}

/* The source and postmap's file hold the same password: both must be root's. */
static void upstream_map_owner(struct adm_check *map, const char *file, const char *dbfile)
{
	const char *const both[] = { file, dbfile };
	bool judged = false;
	struct stat st;

	for (size_t i = 0; i < 2 && !judged; i++) {
		if (stat(both[i], &st) != 0)
			continue;
		judged = true;
		if (st.st_uid != 0) {
			adm_check_set(map, ADM_CHECK_FAIL, "%s belongs to uid %u, not root",
			              both[i], (unsigned)st.st_uid);
			adm_check_fix(map, "chown root %s %s && chmod 0600 %s %s", file, dbfile,
			              file, dbfile);
		} else if (st.st_mode & 0077) {
			adm_check_set(map, ADM_CHECK_WARN, "%s is %04o: the upstream password is "
			              "readable by more than root", both[i],
			              (unsigned)(st.st_mode & 07777));
			adm_check_fix(map, "chmod 0600 %s %s", file, dbfile);
		} else {
			judged = false;
		}
	}
	if (!judged)
		adm_check_set(map, ADM_CHECK_OK, "%s (root only)", file);
}

/* The map is judged even with smtp_sasl_auth_enable off: it still holds the password. */
static void upstream_map(struct check *c, const struct service *t, struct adm_check *map)
{
	char *maps = up_value(c, t, "smtp_sasl_password_maps");
	char *auth = up_value(c, t, "smtp_sasl_auth_enable");
	char dbfile[PATH_MAX + 8];
	const char *file;
	struct stat st;

	if (!maps || !maps[0]) {
		adm_check_set(map, ADM_CHECK_SKIP, "no smtp_sasl_password_maps: the relay does not "
		              "log in upstream");
		goto out;
	}
	if (!is_yes(auth))
		adm_check_line(map, "smtp_sasl_auth_enable = %s: the login is not used",
		               auth && auth[0] ? auth : "(empty)");
	file = strchr(maps, ':') ? strchr(maps, ':') + 1 : maps;
	adm_check_line(map, "smtp_sasl_password_maps = %s", maps);
	snprintf(dbfile, sizeof(dbfile), "%s.db", file);
	if (strncmp(maps, "hash:", 5) == 0 && stat(dbfile, &st) != 0) {
		adm_check_set(map, ADM_CHECK_FAIL, "%s: %s", dbfile, strerror(errno));
		adm_check_fix(map, "postmap -c %s %s", c->dir, maps);
	} else {
		upstream_map_owner(map, file, dbfile);
	}
out:
	free(maps);
	free(auth);
}

void chk_upstream(struct check *c)
{
	struct adm_check *route = adm_checklist_add(c->cl, "upstream-route",
	                                            "relay mail goes to the upstream transport");
	struct adm_check *ck = adm_checklist_add(c->cl, "upstream-tls",
	                                         "upstream TLS verified (smtp_tls_security_level)");
	struct adm_check *ca = adm_checklist_add(c->cl, "upstream-ca", "upstream CA file");
	struct adm_check *map = adm_checklist_add(c->cl, "upstream-password-map",
	                                          "upstream password map");
	struct adm_check *const rest[3] = { ck, ca, map };
	char err[256], where[300];
	char *relayhost = chk_pf_main(c, "relayhost", err, sizeof(err));
	char *filter;
	const struct service *t = NULL;

	if (!relayhost)
		relayhost = strdup("");
	if (!relayhost)
		return;
	filter = relay_filter(c, &(size_t){ 0 }, &(const char *){ NULL });
	check_upstream_scope(c, filter, relayhost);
	free(filter);
	if (upstream_route(c, route, rest, relayhost, &t, where, sizeof where)) {
		upstream_tls(c, t, ck, where);
		upstream_ca(c, t, ca);
		upstream_map(c, t, map);
	}
	free(relayhost);
}

void chk_postfix(struct check *c)
{
	struct adm_check *ck = adm_checklist_add(c->cl, "postfix-check", "postfix check");
	struct adm_check *run = adm_checklist_add(c->cl, "postfix-running", "Postfix running");
	char err[700];

	if (adm_pf_check(c->dir, err, sizeof(err)) < 0) {
		adm_check_set(ck, ADM_CHECK_FAIL, "%s", err);
		adm_check_fix(ck, "postfix -c %s check, and fix what it reports", c->dir);
	} else {
		adm_check_set(ck, ADM_CHECK_OK, "no complaints");
	}
	if (adm_pf_running(c->dir)) {
		adm_check_set(run, ADM_CHECK_OK, "the master process is running");
	} else {
		adm_check_set(run, ADM_CHECK_WARN, "Postfix is not running");
		adm_check_fix(run, "postfix -c %s start (or systemctl start postfix)", c->dir);
	}
}
