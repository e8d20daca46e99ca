/*
 * monotonic.h - the clock of the runtime access's deadlines: milliseconds
 * of CLOCK_MONOTONIC, which a change of the wall clock does not move.
 */
#ifndef CM_LBACCESS_MONOTONIC_H
#define CM_LBACCESS_MONOTONIC_H

/* Milliseconds since an arbitrary fixed point. */
long long monotonic_ms(void);

#endif
