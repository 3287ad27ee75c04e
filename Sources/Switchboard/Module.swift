// SPDX-License-Identifier: Apache-2.0
// This module is planned (see docs/architecture.md); it holds no code yet.
