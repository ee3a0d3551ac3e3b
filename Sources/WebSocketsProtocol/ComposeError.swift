/// The details of an error reply: `[code, message]`, the message defaulting to the HTTP reason phrase of the code.
///
/// `composeError(404)` is `[404, "Not Found"]`, as in the seed.
public func composeError(_ code: Int, _ message: String? = nil) -> JSON {
    .array([.int(Int64(code)), .string(message ?? reasonPhrase(for: code))])
}

/// The HTTP reason phrase of a status code, or `"Error"` for one without a standard phrase.
public func reasonPhrase(for code: Int) -> String {
    switch code {
    case 400: return "Bad Request"
    case 401: return "Unauthorized"
    case 402: return "Payment Required"
    case 403: return "Forbidden"
    case 404: return "Not Found"
    case 405: return "Method Not Allowed"
    case 406: return "Not Acceptable"
    case 408: return "Request Timeout"
    case 409: return "Conflict"
    case 410: return "Gone"
    case 413: return "Payload Too Large"
    case 415: return "Unsupported Media Type"
    case 422: return "Unprocessable Entity"
    case 429: return "Too Many Requests"
    case 500: return "Internal Server Error"
    case 501: return "Not Implemented"
    case 502: return "Bad Gateway"
    case 503: return "Service Unavailable"
    case 504: return "Gateway Timeout"
    default: return "Error"
    }
}
