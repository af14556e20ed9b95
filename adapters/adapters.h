/*
 * adapters/adapters.h: the channel adapters tocsind knows, by name.
 *
 * Each adapter file exports one `const struct adapter_ops adapter_NAME`
 * (engine/adapter.h is the contract) and adds one line to the table in
 * registry.c. A lane's `adapter = NAME` key picks it.
 */
#ifndef TOCSIN_ADAPTERS_H
#define TOCSIN_ADAPTERS_H

#include "adapter.h"

/* Built with AddressSanitizer (clang or gcc): adapters that keep freed memory for reuse
   free it instead (or poison it), so that a use after free still shows. */
#if defined(__SANITIZE_ADDRESS__)
#define TOCSIN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TOCSIN_ASAN 1
#endif
#endif

/* NULL when no adapter has that name. */
const struct adapter_ops *adapter_find(const char *name);

extern const struct adapter_ops adapter_sim;
extern const struct adapter_ops adapter_smpp;
extern const struct adapter_ops adapter_terminal;
extern const struct adapter_ops adapter_push;

#endif
