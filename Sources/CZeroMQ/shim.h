// SPDX-License-Identifier: Apache-2.0
#ifndef SWITCHBOARD_CZEROMQ_SHIM_H
#define SWITCHBOARD_CZEROMQ_SHIM_H
#include <zmq.h>
#endif
