/*
 * wire_int.h - what wire.c and wire_dec.c share and no one else uses.
 */
#ifndef SIPC_PROTO_WIRE_INT_H
#define SIPC_PROTO_WIRE_INT_H

#include <stddef.h>
#include <stdint.h>

/* 1 when p[0..n) is UTF-8 without control characters (a name). */
int	wire_name_valid(const uint8_t *p, size_t n);

#endif
