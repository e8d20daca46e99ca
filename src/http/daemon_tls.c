/*
 * daemon_tls.c - the daemon's TLS context: built from --tls-cert and
 * --tls-key at start (and by --check-config), built again on SIGHUP for
 * new connections (daemon_tls_reload).
 */
#include <stdio.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "../util/log.h"
#include "http.h"
#include "server_internal.h"
#include "daemon_internal.h"

/* --- TLS ---------------------------------------------------------------- */

/* Mozilla's "intermediate" profile (ssl-config.mozilla.org, v5.7): TLS 1.2
 * only with forward-secret AEAD suites, and TLS 1.3 (whose suites all
 * are). The DHE-RSA suites the profile also lists are left out: every
 * client that can speak TLS 1.2 has ECDHE, and DHE would need Diffie-
 * Hellman parameters to manage for nothing. */
#define TLS12_CIPHERS                                                                              \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                               \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS13_CIPHERSUITES                                                                         \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

/* A TLS context with the certificate chain and key of the options, or
 * NULL with err filled. The caller owns the one reference returned. */
static SSL_CTX *
tls_context_new(const struct server_options *o, struct error *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		error_set(err, 500, "cannot create a TLS context");
		return NULL;
	}
	/* no TLS 1.0/1.1; no renegotiation (a client could make the server
	 * redo the expensive half of a handshake at will) */
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, TLS13_CIPHERSUITES) != 1) {
		error_set(err, 500, "cannot configure the TLS protocols and cipher suites");
		goto bad;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	/* ALPN: h2 for clients that offer it (h2o serves HTTP/2 on the same
	 * connection handling), http/1.1 for the others */
	h2o_ssl_register_alpn_protocols(ctx, h2o_alpn_protocols);
	if (SSL_CTX_use_certificate_chain_file(ctx, o->tls_cert) != 1) {
		error_set(err, 400, "cannot load the TLS certificate %s", o->tls_cert);
		goto bad;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, o->tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		error_set(err, 400,
		          "cannot load the TLS key %s (or it does not match the certificate)",
		          o->tls_key);
		goto bad;
	}
	ERR_clear_error();
	return ctx;
bad:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

int
daemon_tls_setup(struct server *s, struct error *err)
{
	if (s->opts.tls_cert == NULL)
		return 0;
	if ((s->ssl_ctx = tls_context_new(&s->opts, err)) == NULL)
		return -1;
	return 0;
}

/* The certificate's subject, serial (hex) and end of validity, for logs. */
static void
tls_describe(SSL_CTX *ctx, char *subject, size_t subject_size, char *serial, size_t serial_size,
             char *not_after, size_t not_after_size)
{
	X509 *cert = SSL_CTX_get0_certificate(ctx);
	BIGNUM *bn = NULL;
	char *hex = NULL;
	BIO *bio;

	subject[0] = serial[0] = not_after[0] = '\0';
	if (cert == NULL)
		return;
	X509_NAME_oneline(X509_get_subject_name(cert), subject, (int)subject_size);
	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL)) != NULL &&
	    (hex = BN_bn2hex(bn)) != NULL)
		snprintf(serial, serial_size, "%s", hex);
	OPENSSL_free(hex);
	BN_free(bn);
	if ((bio = BIO_new(BIO_s_mem())) != NULL) {
		if (ASN1_TIME_print(bio, X509_get0_notAfter(cert)) == 1) {
			int n = BIO_read(bio, not_after, (int)not_after_size - 1);
			not_after[n > 0 ? n : 0] = '\0';
		}
		BIO_free(bio);
	}
}

/* SIGHUP: reads the certificate and key again. New connections get the
 * new context; established ones keep theirs (an SSL holds a reference to
 * its SSL_CTX). A certificate that does not load leaves the old one in
 * place. */
void
daemon_tls_reload(struct server *s)
{
	struct error err = {0};
	char subject[256], serial[80], not_after[64];
	SSL_CTX *ctx;

	if (s->opts.tls_cert == NULL) {
		log_kv(LOG_INFO, "SIGHUP: nothing to reload (no --tls-cert)", NULL);
		return;
	}
	if ((ctx = tls_context_new(&s->opts, &err)) == NULL) {
		log_kv(LOG_ERROR, "cannot reload the TLS certificate; keeping the current one",
		       "error", err.what, NULL);
		return;
	}
	tls_describe(ctx, subject, sizeof(subject), serial, sizeof(serial), not_after,
	             sizeof(not_after));
	server_set_ssl_ctx(s, ctx);
	log_kv(LOG_INFO, "TLS certificate reloaded", "cert", s->opts.tls_cert, "subject", subject,
	       "serial", serial, "not_after", not_after, NULL);
}
