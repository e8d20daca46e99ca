/*
 * utf8.c - UTF-8 validation and repair (see utf8.h).
 *
 * The decoder follows Table 3-7 of the Unicode standard ("Well-Formed UTF-8
 * Byte Sequences"): the lead byte fixes the length and the range allowed
 * for the second byte (which is what excludes overlong forms, surrogates
 * and values above U+10FFFF); later bytes are 80..BF. A sequence that
 * breaks off is replaced as a whole, and decoding resumes at the byte that
 * broke it, so a valid character after garbage is never swallowed.
 */
#include <string.h>

#include "utf8.h"

/* The length of the well-formed character at s[0..len), or 0 when the
 * bytes there are ill-formed; *bad is then the length of the maximal
 * ill-formed subpart to replace (at least 1). */
static size_t
char_length(const unsigned char *s, size_t len, size_t *bad)
{
	unsigned char lo = 0x80, hi = 0xBF;
	size_t n, i;

	*bad = 1;
	if (s[0] >= 0x01 && s[0] <= 0x7F)
		return 1;
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		n = 2;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
		n = 3;
		if (s[0] == 0xE0)
			lo = 0xA0;
		else if (s[0] == 0xED)
			hi = 0x9F;
	} else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
		n = 4;
		if (s[0] == 0xF0)
			lo = 0x90;
		else if (s[0] == 0xF4)
			hi = 0x8F;
	} else
		return 0; /* NUL, a continuation byte, C0, C1, F5..FF */
	for (i = 1; i < n; i++) {
		if (i >= len || s[i] < lo || s[i] > hi) {
			*bad = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xBF;
	}
	return n;
}

size_t
utf8_sanitize(char *dst, size_t size, const char *src, size_t len)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t in = 0, out = 0, n, bad;

	while (in < len) {
		if ((n = char_length(s + in, len - in, &bad)) == 0) {
			if (out + sizeof(UTF8_REPLACEMENT) - 1 > size - 1)
				break;
			memcpy(dst + out, UTF8_REPLACEMENT, sizeof(UTF8_REPLACEMENT) - 1);
			out += sizeof(UTF8_REPLACEMENT) - 1;
			in += bad;
			continue;
		}
		if (out + n > size - 1)
			break;
		memcpy(dst + out, s + in, n);
		out += n;
		in += n;
	}
	dst[out] = '\0';
	return out;
}

int
utf8_is_valid(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, n, bad;

	while (i < len) {
		if ((n = char_length(u + i, len - i, &bad)) == 0)
			return 0;
		i += n;
	}
	return 1;
}

size_t
utf8_length(const char *s, size_t bytes)
{
	size_t i, n = 0;

	for (i = 0; i < bytes; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			n++;
	return n;
}

size_t
utf8_complete_length(const char *s, size_t len)
{
	size_t lead = len;
	unsigned char c;

	while (lead > 0 && ((unsigned char)s[lead - 1] & 0xc0) == 0x80)
		lead--;
	if (lead == 0 || (c = (unsigned char)s[lead - 1]) < 0xc0)
		return len;
	if (len - (lead - 1) < (c >= 0xf0 ? 4u : c >= 0xe0 ? 3u : 2u))
		return lead - 1;
	return len;
}
