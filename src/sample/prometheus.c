/*
 * prometheus.c - a node's value of an application metric from Prometheus
 * (see sample.h): GET URL/api/v1/query?query=Q with every {node} of the
 * query replaced by the node's name, the standard instant query.
 *
 * The answer must be one sample: a scalar, or an instant vector of one
 * series. An empty vector, NaN or +-Inf is "no data" (not an error: a
 * node without traffic has no error ratio); two series or more is an
 * error, since which one is the node's would be a guess. The answer is
 * read into a bounded buffer (ANSWER_MAX).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "sample.h"

#define ANSWER_MAX (256 * 1024)

struct answer {
	char *data;
	size_t len;
	int is_too_long;
};

static size_t
on_data(char *data, size_t size, size_t n, void *arg)
{
	struct answer *a = arg;
	size_t add = size * n;
	char *grown;

	if (a->len + add > ANSWER_MAX) {
		a->is_too_long = 1;
		return 0;
	}
	if ((grown = realloc(a->data, a->len + add + 1)) == NULL)
		return 0;
	a->data = grown;
	memcpy(a->data + a->len, data, add);
	a->len += add;
	a->data[a->len] = '\0';
	return add;
}

/* query with every {node} replaced; malloc'd, or NULL when too long. */
static char *
substitute_node(const char *query, const char *node)
{
	size_t size = strlen(query) + 1, used = 0;
	const char *p;
	char *out;

	for (p = query; (p = strstr(p, "{node}")) != NULL; p += 6)
		size += strlen(node);
	if (size > 8192 || (out = malloc(size)) == NULL)
		return NULL;
	for (p = query; *p != '\0';) {
		if (strncmp(p, "{node}", 6) == 0) {
			memcpy(out + used, node, strlen(node));
			used += strlen(node);
			p += 6;
		} else
			out[used++] = *p++;
	}
	out[used] = '\0';
	return out;
}

/* The value of one [time, "value"] pair. */
static int
pair_value(const json_t *pair, double *value)
{
	const char *text = json_string_value(json_array_get(pair, 1));
	char *end;

	if (text == NULL)
		return -1;
	*value = strtod(text, &end);
	return *end == '\0' ? 0 : -1;
}

static int
read_answer(const char *body, double *value, int *has_value, char *why, size_t why_size)
{
	json_error_t jerr;
	json_t *doc = json_loads(body, 0, &jerr), *data, *result;
	const char *type;
	int rc = -1;

	*has_value = 0;
	if (doc == NULL) {
		snprintf(why, why_size, "Prometheus answered something that is not JSON");
		return -1;
	}
	if (strcmp(json_string_value(json_object_get(doc, "status")) ?: "", "success") != 0) {
		snprintf(why, why_size, "Prometheus refused the query: %.200s",
		         json_string_value(json_object_get(doc, "error")) ?: "(no reason given)");
		goto done;
	}
	data = json_object_get(doc, "data");
	type = json_string_value(json_object_get(data, "resultType"));
	result = json_object_get(data, "result");
	if (type != NULL && strcmp(type, "scalar") == 0) {
		if (pair_value(result, value) != 0)
			goto bad_shape;
	} else if (type != NULL && strcmp(type, "vector") == 0 && json_is_array(result)) {
		if (json_array_size(result) == 0) {
			rc = 0; /* no data */
			goto done;
		}
		if (json_array_size(result) > 1) {
			snprintf(
			    why, why_size,
			    "the query gives %zu series for one node; make it give one (sum, or a "
			    "ratio of sums)",
			    json_array_size(result));
			goto done;
		}
		if (pair_value(json_object_get(json_array_get(result, 0), "value"), value) != 0)
			goto bad_shape;
	} else
		goto bad_shape;
	*has_value = isfinite(*value);
	rc = 0;
	goto done;
bad_shape:
	snprintf(why, why_size, "the query must give a scalar or one series (got %.20s)",
	         type != NULL ? type : "nothing");
done:
	json_decref(doc);
	return rc;
}

int
sample_prometheus(const char *url, const char *query, const char *node, int timeout_ms,
                  double *value, int *has_value, char *why, size_t why_size)
{
	struct answer a = {NULL, 0, 0};
	char *q, *escaped = NULL, *full = NULL, errbuf[CURL_ERROR_SIZE] = "";
	long status = 0;
	CURLcode cc;
	CURL *h;
	int rc = -1;

	*has_value = 0;
	if ((q = substitute_node(query, node)) == NULL) {
		snprintf(why, why_size, "the query is too long");
		return -1;
	}
	if ((h = curl_easy_init()) == NULL || (escaped = curl_easy_escape(h, q, 0)) == NULL ||
	    asprintf(&full, "%s%s/api/v1/query?query=%s", url,
	             url[0] != '\0' && url[strlen(url) - 1] == '/' ? "." : "", escaped) < 0) {
		snprintf(why, why_size, "out of memory");
		full = NULL;
		goto done;
	}
	curl_easy_setopt(h, CURLOPT_URL, full);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if ((cc = curl_easy_perform(h)) != CURLE_OK) {
		snprintf(why, why_size, "Prometheus at %.200s: %s", url,
		         a.is_too_long       ? "answer too long"
		         : errbuf[0] != '\0' ? errbuf
		                             : curl_easy_strerror(cc));
		goto done;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (a.data == NULL) {
		snprintf(why, why_size, "Prometheus answered HTTP %ld with no body", status);
		goto done;
	}
	rc = read_answer(a.data, value, has_value, why, why_size);
done:
	free(a.data);
	free(full);
	curl_free(escaped);
	if (h != NULL)
		curl_easy_cleanup(h);
	free(q);
	return rc;
}
