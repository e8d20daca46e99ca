/*
 * client.c - blocking JSON-over-HTTP calls with libcurl; see client.h.
 *
 * A fresh easy handle per call: most commands make one or two calls, and
 * wait and rollout call at the pace of long polls, so connection reuse
 * buys little, and a fresh handle carries no state into the next call.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "client.h"
#include "util/xalloc.h"

#define BODY_MAX (16 * 1024 * 1024) /* far above any answer the API gives */

struct buffer {
	char *data;
	size_t len;
};

int
client_global_init(struct error *err)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return error_set(err, 0, "cannot initialise libcurl");
	return 0;
}

void
client_global_cleanup(void)
{
	curl_global_cleanup();
}

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct buffer *buf = userdata;
	size_t n = size * nmemb;

	if (buf->len + n > BODY_MAX)
		return 0; /* makes curl fail with CURLE_WRITE_ERROR */
	buf->data = xreallocarray(buf->data, buf->len + n + 1, 1);
	memcpy(buf->data + buf->len, ptr, n);
	buf->len += n;
	buf->data[buf->len] = '\0';
	return n;
}

char *
client_path(const char *segment, ...)
{
	va_list ap;
	const char *s;
	char *path = NULL, *escaped;
	size_t len = 0, n;

	va_start(ap, segment);
	for (s = segment; s != NULL; s = va_arg(ap, const char *)) {
		/* The handle argument is unused since curl 7.82; NULL means
		 * out of memory. */
		if ((escaped = curl_easy_escape(NULL, s, 0)) == NULL)
			abort();
		n = strlen(escaped);
		path = xreallocarray(path, len + n + 2, 1);
		path[len] = '/';
		memcpy(path + len + 1, escaped, n + 1);
		len += n + 1;
		curl_free(escaped);
	}
	va_end(ap);
	return path != NULL ? path : xstrdup("/");
}

/* Sets credentials: Basic for a user, Bearer for a token, else netrc. */
static int
set_credentials(CURL *curl, const struct client *c, struct curl_slist **headers, struct error *err)
{
	char line[4096];
	struct curl_slist *grown;
	const char *netrc_file;

	if (c->user != NULL) {
		curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(curl, CURLOPT_USERNAME, c->user);
		curl_easy_setopt(curl, CURLOPT_PASSWORD, c->password != NULL ? c->password : "");
		return 0;
	}
	if (c->token != NULL) {
		if (strpbrk(c->token, "\r\n") != NULL || strlen(c->token) > sizeof(line) - 32)
			return error_set(err, 0, "the token is not a valid token");
		snprintf(line, sizeof(line), "Authorization: Bearer %s", c->token);
		if ((grown = curl_slist_append(*headers, line)) == NULL)
			abort(); /* out of memory */
		*headers = grown;
		return 0;
	}
	curl_easy_setopt(curl, CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
	if ((netrc_file = getenv("NETRC")) != NULL && *netrc_file != '\0')
		curl_easy_setopt(curl, CURLOPT_NETRC_FILE, netrc_file);
	return 0;
}

/* Turns a failed transfer into "cannot reach URL: why". The OS error,
 * when there is one, reads best ("Connection refused"). */
static int
transport_error(CURL *curl, CURLcode code, const char *errbuf, const struct client *c,
                struct error *err)
{
	long os_errno = 0;
	const char *why = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(code);

	curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno);
	if (code == CURLE_COULDNT_CONNECT && os_errno != 0)
		why = strerror((int)os_errno);
	if (code == CURLE_OPERATION_TIMEDOUT)
		return error_set(err, 0, "cannot reach %s: no answer within %ld s", c->base_url,
		                 c->timeout_s);
	return error_set(err, 0, "cannot reach %s: %s", c->base_url, why);
}

/* Turns a 4xx/5xx answer into the server's own sentence. */
static int
refusal_error(long status, json_t *json, struct error *err)
{
	const char *what = json_string_value(json_object_get(json, "error"));
	const char *entry = NULL;
	json_t *detail = json_object_get(json, "detail");

	if (json_is_object(detail))
		entry = json_string_value(json_object_get(detail, "entry"));
	if (what == NULL || *what == '\0')
		return error_set(err, (int)status, "the server refused with HTTP status %ld",
		                 status);
	if (entry != NULL)
		return error_set_entry(err, (int)status, entry, "%s", what);
	return error_set(err, (int)status, "%s", what);
}

/* Everything about the request but credentials and the body. */
/* libcurl's progress callback: non-zero abandons the transfer. */
static int
on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	const struct client *c = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return c->stop != NULL && *c->stop;
}

static void
set_common_options(CURL *curl, const struct client *c, const char *url, const char *method,
                   struct buffer *buf, char *errbuf)
{
	/* curl copies these strings; a copy it cannot make is out of memory,
	 * not a request that cannot reach the server (xalloc.h) */
	if (curl_easy_setopt(curl, CURLOPT_URL, url) == CURLE_OUT_OF_MEMORY ||
	    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method) == CURLE_OUT_OF_MEMORY ||
	    curl_easy_setopt(curl, CURLOPT_USERAGENT, "clustermgmt/" CM_VERSION) ==
	        CURLE_OUT_OF_MEMORY)
		abort();
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, c->timeout_s > 0 ? c->timeout_s : 30L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, buf);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	if (c->stop != NULL) {
		curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(curl, CURLOPT_XFERINFODATA, c);
		curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	}
	if (c->cacert != NULL)
		curl_easy_setopt(curl, CURLOPT_CAINFO, c->cacert);
	if (c->is_insecure) {
		curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
	}
}

/* Checks the answer's status and JSON; on success hands buf to reply. */
static int
take_answer(long status, struct buffer *buf, struct client_reply *reply, struct error *err)
{
	json_t *json = NULL;

	if (buf->data != NULL)
		json = json_loads(buf->data, JSON_DECODE_ANY, NULL);
	if (status < 200 || status > 299) {
		refusal_error(status, json, err);
		json_decref(json);
		return CLI_REFUSED;
	}
	if (json == NULL) {
		error_set(err, (int)status, "the server's answer is not JSON");
		return CLI_REFUSED;
	}
	reply->status = status;
	reply->json = json;
	reply->body = buf->data;
	buf->data = NULL;
	return CLI_OK;
}

int
client_call(const struct client *c, const char *method, const char *path, json_t *body,
            struct client_reply *reply, struct error *err)
{
	CURL *curl = NULL;
	CURLcode code;
	struct curl_slist *headers = NULL;
	struct buffer buf = {NULL, 0};
	char errbuf[CURL_ERROR_SIZE] = "", *url = NULL, *payload = NULL;
	long status = 0;
	int rc = CLI_UNREACHABLE;
	size_t base_len = strlen(c->base_url);

	while (base_len > 0 && c->base_url[base_len - 1] == '/')
		base_len--;
	url = xmalloc(base_len + strlen(path) + 1);
	if ((curl = curl_easy_init()) == NULL)
		abort(); /* out of memory: curl_global_init has succeeded */
	memcpy(url, c->base_url, base_len);
	strcpy(url + base_len, path);
	set_common_options(curl, c, url, method, &buf, errbuf);
	headers = curl_slist_append(headers, "Accept: application/json");
	if (set_credentials(curl, c, &headers, err) < 0) {
		rc = CLI_USAGE;
		goto done;
	}
	if (body != NULL) {
		if ((payload = json_dumps(body, JSON_COMPACT)) == NULL)
			abort(); /* out of memory: a json_t always serialises */
		headers = curl_slist_append(headers, "Content-Type: application/json");
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload);
	}
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	if ((code = curl_easy_perform(curl)) != CURLE_OK) {
		if (code == CURLE_OUT_OF_MEMORY)
			abort(); /* not "unreachable": the one policy (xalloc.h) */
		transport_error(curl, code, errbuf, c, err);
		goto done;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	rc = take_answer(status, &buf, reply, err);
done:
	curl_slist_free_all(headers);
	if (curl != NULL)
		curl_easy_cleanup(curl);
	free(payload);
	free(url);
	free(buf.data);
	return rc;
}

void
client_reply_free(struct client_reply *reply)
{
	if (reply == NULL)
		return;
	json_decref(reply->json);
	free(reply->body);
	reply->json = NULL;
	reply->body = NULL;
}
