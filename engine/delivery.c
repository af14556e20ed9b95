/*
 * engine/delivery.c: names of channels and delivery states.
 */
#include "delivery.h"

#include <string.h>

static const char *channel_names[CHANNEL_COUNT] = {"sms", "app", "terminal"};

const char *channel_name(enum channel c)
{
	return (unsigned)c < CHANNEL_COUNT ? channel_names[c] : "?";
}

int channel_parse(const char *s)
{
	for (int c = 0; c < CHANNEL_COUNT; c++)
		if (!strcmp(s, channel_names[c]))
			return c;
	return -1;
}

const char *delivery_state_name(enum delivery_state s)
{
	static const char *n[] = {"queued",    "sent",    "accepted", "delivered",
				  "failed",    "expired", "cancelled"};
	return (unsigned)s < sizeof(n) / sizeof(n[0]) ? n[s] : "?";
}

bool delivery_final(const struct delivery *d)
{
	return d->state >= DELIVERY_DELIVERED;
}
