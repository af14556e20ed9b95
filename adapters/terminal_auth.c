/*
 * adapters/terminal_auth.c: the terminal handshake's HMAC (see terminal.h
 * and proto/README-terminal.md): mac = HMAC-SHA256(secret, nonce || id).
 * The secret is the `secret` column of terminals.csv, used as raw bytes.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "terminal.h"

int terminal_auth_mac(const void *secret, size_t secret_len, const uint8_t *nonce,
		      size_t nonce_len, const char *id, uint8_t mac[TERMINAL_MAC_LEN])
{
	size_t id_len = strlen(id);
	uint8_t msg[64 + TERMINAL_ID_MAX];
	unsigned int out_len = 0;
	if (nonce_len > 64 || id_len > TERMINAL_ID_MAX)
		return -1;
	memcpy(msg, nonce, nonce_len);
	memcpy(msg + nonce_len, id, id_len);
	if (!HMAC(EVP_sha256(), secret, (int)secret_len, msg, nonce_len + id_len, mac, &out_len))
		return -1;
	return out_len == TERMINAL_MAC_LEN ? 0 : -1;
}

bool terminal_auth_check(const void *secret, size_t secret_len, const uint8_t *nonce,
			 size_t nonce_len, const char *id, const uint8_t *mac, size_t mac_len)
{
	uint8_t want[TERMINAL_MAC_LEN];
	if (mac_len != TERMINAL_MAC_LEN)
		return false;
	if (terminal_auth_mac(secret, secret_len, nonce, nonce_len, id, want) < 0)
		return false;
	return CRYPTO_memcmp(want, mac, TERMINAL_MAC_LEN) == 0;
}
