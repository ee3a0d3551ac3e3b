import NIOHTTP1
import WebSocketsProtocol

/// The status page's HTML (its script and styles are ``StatusAsset``s) and the headers every answer under
/// `/WebSockets/status` carries: never cached, never framed, scripts and styles from this server only.
enum StatusPage {
    /// Headers that keep the page's answers out of caches, frames and other origins' reach. The referrer policy is
    /// `same-origin`, not `no-referrer`: under `no-referrer` Chromium sends `Origin: null` with the page's own form,
    /// and the sign-in, which asks for the page's origin, refused every key.
    static let securityHeaders: [(String, String)] = [
        ("Cache-Control", "no-store"),
        (
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
                + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
        ("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "same-origin"),
    ]

    /// `response` with ``securityHeaders``.
    static func secured(_ response: HTTPServerResponse) -> HTTPServerResponse {
        var response = response
        for (name, value) in securityHeaders { response.headers.replaceOrAdd(name: name, value: value) }
        return response
    }

    /// An HTML page.
    static func response(_ html: String, status: HTTPResponseStatus = .ok) -> HTTPServerResponse {
        secured(
            HTTPServerResponse(
                status: status, headers: ["Content-Type": "text/html; charset=utf-8"], body: Array(html.utf8)))
    }

    /// Back to the page, after a sign-in or out (303: the browser then loads it with GET).
    static func redirect() -> HTTPServerResponse {
        secured(HTTPServerResponse(status: .seeOther, headers: ["Location": StatusAccess.path]))
    }

    private static func page(_ title: String, _ body: String) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(title)</title>
        <link rel="stylesheet" href="/WebSockets/status.css">
        </head>
        <body>
        \(body)
        </body>
        </html>
        """
    }

    /// The sign-in form, with `message` (a refusal) above it.
    static func signIn(message: String?) -> String {
        let refusal = message.map { #"<p class="error" id="refusal" role="alert">\#(escaped($0))</p>"# } ?? ""
        return page(
            "WebSockets status: sign in",
            """
            <header><h1>WebSockets status</h1></header>
            <form class="login" method="post" action="\(StatusAccess.path)">
              <h2>Sign in</h2>
              <p class="note">The server's security key (<code>security_key</code> in its settings). It is sent once;
              this browser then keeps a sign-in for 8 hours that no script can read.</p>
              \(refusal)
              <input type="password" name="key" id="key" autocomplete="current-password" required
                aria-label="Security key" placeholder="Security key">
              <button type="submit">Sign in</button>
            </form>
            """)
    }

    /// The status page; its script fills it in every 2 s.
    static let status = page(
        "WebSockets status",
        """
        <header>
          <h1>WebSockets status</h1>
          <span id="server" class="server"></span>
          <span id="state" class="badge">loading</span>
          <form method="post" action="\(StatusAccess.path)/signout"><button class="quiet" type="submit">Sign out</button></form>
        </header>
        <main>
          <section class="wide">
            <h2>Connections now</h2>
            <div class="figures">
              <div><b id="authenticated">–</b><span>registered users' tabs</span></div>
              <div><b id="guests">–</b><span>guests' tabs</span></div>
              <div><b id="unauthenticated">–</b><span>not authenticated yet</span></div>
              <div><b id="users-online">–</b><span>users online here</span></div>
              <div><b id="total">–</b><span>connections in all</span></div>
              <div><b id="http">–</b><span>HTTP connections</span></div>
            </div>
          </section>
          <section class="wide">
            <h2>Traffic, last 15 minutes</h2>
            <div class="charts">
              <figure><figcaption>Messages in <b id="rate-in">–</b>/s</figcaption><svg id="chart-in" viewBox="0 0 300 80" preserveAspectRatio="none" role="img" aria-label="Messages in per second"></svg></figure>
              <figure><figcaption>Messages out <b id="rate-out">–</b>/s</figcaption><svg id="chart-out" viewBox="0 0 300 80" preserveAspectRatio="none" role="img" aria-label="Messages out per second"></svg></figure>
              <figure><figcaption>Bytes out <b id="rate-bytes">–</b>/s</figcaption><svg id="chart-bytes" viewBox="0 0 300 80" preserveAspectRatio="none" role="img" aria-label="Bytes out per second"></svg></figure>
            </div>
          </section>
          <section>
            <h2>The site</h2>
            <table id="site"><thead><tr><th></th><th>per s</th><th>p50</th><th>p99</th></tr></thead><tbody></tbody></table>
            <p class="note" id="lanes"></p>
            <ul id="site-failures" class="plain"></ul>
          </section>
          <section>
            <h2>Refusals and closes</h2>
            <table id="refusals"><thead><tr><th>reason</th><th>total</th><th>per s</th></tr></thead><tbody></tbody></table>
            <p class="note" id="no-refusals">None so far.</p>
          </section>
          <section class="wide" id="cluster" hidden>
            <h2>The cluster</h2>
            <p class="note" id="database"></p>
            <div class="scroll"><table id="servers"><thead><tr><th>server</th><th>state</th><th>connections</th><th>heartbeat</th><th>behind</th></tr></thead><tbody></tbody></table></div>
          </section>
          <section class="wide">
            <h2>Send a test message</h2>
            <form id="send" class="send">
              <input id="send-action" required placeholder="action" aria-label="Action" value="Status/test">
              <input id="send-details" placeholder="details (JSON)" aria-label="Details (JSON)" value="&quot;hello&quot;">
              <select id="send-to" aria-label="Send to">
                <option value="1">everyone</option><option value="2">registered users</option>
                <option value="3">users</option><option value="4">groups</option><option value="6">sessions</option>
                <option value="7">connections</option>
              </select>
              <input id="send-target" placeholder="target (JSON)" aria-label="Target (JSON)">
              <button type="submit">Send</button>
            </form>
            <p class="note" id="send-result" role="status"></p>
          </section>
        </main>
        <script src="\(StatusAccess.path)/app.js"></script>
        """)

    private static func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
