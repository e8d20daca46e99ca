/*
 * merge.c - the sorted merge walk; see merge.h.
 */
#include <string.h>

#include "merge.h"

static const void *
element(const struct merge_side *side, size_t i)
{
	return (const char *)side->base + i * side->size;
}

/* Keys shared between copies of a model are the same string. */
static int
keys_compare(const char *a, const char *b)
{
	return a == b ? 0 : strcmp(a, b);
}

int
merge_walk(const struct merge_side *left, const struct merge_side *right,
           const struct merge_calls *calls, void *arg)
{
	size_t i = 0, j = 0;
	int cmp, rc = 0;

	while (rc == 0 && (i < left->n || j < right->n)) {
		if (i == left->n)
			cmp = 1;
		else if (j == right->n)
			cmp = -1;
		else
			cmp = keys_compare(left->key(element(left, i)),
			                   right->key(element(right, j)));
		if (cmp < 0) {
			if (calls->only_left != NULL)
				rc = calls->only_left(arg, element(left, i));
			i++;
		} else if (cmp > 0) {
			if (calls->only_right != NULL)
				rc = calls->only_right(arg, element(right, j));
			j++;
		} else {
			if (calls->both != NULL)
				rc = calls->both(arg, element(left, i), element(right, j));
			i++, j++;
		}
	}
	return rc;
}
