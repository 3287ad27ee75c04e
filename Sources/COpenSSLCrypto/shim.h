// SPDX-License-Identifier: Apache-2.0
#ifndef SWITCHBOARD_COPENSSLCRYPTO_SHIM_H
#define SWITCHBOARD_COPENSSLCRYPTO_SHIM_H
#include <openssl/evp.h>
#endif
