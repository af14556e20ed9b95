/*
 * adapters/registry.c: the table of adapters (one line per adapter).
 */
#include <string.h>

#include "adapters.h"

static const struct adapter_ops *const adapters[] = {
	&adapter_sim,
	&adapter_smpp,
	&adapter_terminal,
	&adapter_push,
};

const struct adapter_ops *adapter_find(const char *name)
{
	for (size_t i = 0; i < sizeof(adapters) / sizeof(adapters[0]); i++)
		if (!strcmp(adapters[i]->name, name))
			return adapters[i];
	return NULL;
}
