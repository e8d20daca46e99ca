/*
 * utf8.h - making client-supplied bytes safe to store and show as text.
 *
 * What clients send (a User-Agent, say) is bytes, not text: it may be
 * invalid UTF-8, and a byte limit may fall inside a character. jansson
 * refuses such strings, so whatever the daemon keeps from a client is
 * cleaned once, when it is stored, and every surface then shows the same
 * text.
 */
#ifndef CM_UTF8_H
#define CM_UTF8_H

#include <stddef.h>

/* U+FFFD REPLACEMENT CHARACTER, as UTF-8. */
#define UTF8_REPLACEMENT "\xEF\xBF\xBD"

/* Copies len bytes of src (need not be terminated) into dst as valid
 * UTF-8, terminated, in at most size - 1 bytes (size >= 1):
 *
 *   - each maximal ill-formed subsequence (Unicode 15, section 3.9, "U+FFFD
 *     substitution of maximal subparts"; what Python's
 *     bytes.decode("utf-8", "replace") and browsers do) becomes one U+FFFD;
 *     overlong forms, surrogates and code points above U+10FFFF are
 *     ill-formed;
 *   - NUL bytes also become U+FFFD (a C string cannot hold them);
 *   - the result is cut on a character boundary: a character that does
 *     not fit whole is dropped with everything after it.
 *
 * Returns the length written (excluding the terminator). Never fails. */
size_t utf8_sanitize(char *dst, size_t size, const char *src, size_t len);

/* Is s[0..len) valid UTF-8 without NUL bytes? */
int utf8_is_valid(const char *s, size_t len);

/* Characters of the UTF-8 text s[0..bytes): every byte that is not a
 * continuation byte starts one. The text is assumed valid UTF-8 (what is
 * not is counted one character per stray lead byte, never more than
 * bytes). The one way limits (core/limits.h) and CLI tables count text. */
size_t utf8_length(const char *s, size_t bytes);

/* The length of s[0..len) without a multi-byte character cut short at its
 * end (what a byte-limited copy such as snprintf can leave): len when the
 * text ends on a character boundary. */
size_t utf8_complete_length(const char *s, size_t len);

#endif
