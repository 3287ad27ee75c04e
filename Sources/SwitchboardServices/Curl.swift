// SPDX-License-Identifier: Apache-2.0
internal import CCurl

/// Facts about the linked libcurl.
public enum Curl {
    /// The libcurl version string, e.g. `libcurl/7.88.1 OpenSSL/3.0.19 …`.
    public static var version: String {
        String(cString: curl_version())
    }
}
