/// The demo's one page: a name form, or the chat built on `cs.WebSockets` (served by the server at
/// `/WebSockets/client.js`).
enum DemoPage {
    /// The chat for a signed-in member, else the name form; `nameRefused`: the last name given was blank or too
    /// long, and the form says so.
    static func html(name: String?, id: Int64?, nameRefused: Bool = false) -> String {
        let body: String
        if let name, let id {
            body = chat.replacingOccurrences(of: "{{NAME}}", with: escape(name))
                .replacingOccurrences(of: "{{ID}}", with: String(id))
        } else {
            body = login.replacingOccurrences(
                of: "{{ERROR}}",
                with: nameRefused ? #"<p class="error" id="name-error">Pick a name of 1 to 32 characters.</p>"# : "")
        }
        return page.replacingOccurrences(of: "{{BODY}}", with: body)
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    private static let page = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>WebSockets demo</title>
        <style>
          :root { font-family: system-ui, sans-serif; color: #1d2430; background: #f4f6fa; }
          body { margin: 0; }
          header { display: flex; align-items: center; gap: 1rem; padding: .8rem 1.2rem; background: #1d2430; color: #fff; }
          header h1 { font-size: 1.1rem; margin: 0; flex: 1; }
          #status { font-size: .85rem; padding: .2rem .6rem; border-radius: 1rem; background: #777; }
          #status.online { background: #2e8b57; } #status.offline, #status.closed { background: #b03a2e; }
          main { display: grid; grid-template-columns: 14rem 1fr; gap: 1rem; padding: 1rem 1.2rem; max-width: 60rem; margin: auto; }
          section, aside, form.login { background: #fff; border-radius: .6rem; padding: 1rem; box-shadow: 0 1px 3px #0002; }
          aside h2, section h2 { font-size: .95rem; margin: 0 0 .6rem; }
          #users { list-style: none; margin: 0; padding: 0; }
          #users li { padding: .3rem .4rem; border-radius: .3rem; cursor: pointer; }
          #users li:hover, #users li.selected { background: #e6ecf7; }
          .dot { display: inline-block; width: .6rem; height: .6rem; border-radius: 50%; background: #b8bec9; margin-right: .45rem; }
          .dot.online { background: #2e8b57; }
          #log { height: 22rem; overflow-y: auto; border: 1px solid #e3e7ee; border-radius: .4rem; padding: .5rem; margin-bottom: .6rem; }
          #log p { margin: .25rem 0; } #log .private { color: #6a1b9a; } #log .system { color: #666; font-style: italic; }
          #log .error { color: #b03a2e; }
          form.send { display: flex; gap: .5rem; } form.send input { flex: 1; }
          input, button { font: inherit; padding: .45rem .7rem; border-radius: .4rem; border: 1px solid #c8cfdb; }
          button { background: #2f5fb3; color: #fff; border-color: #2f5fb3; cursor: pointer; }
          form.login { max-width: 22rem; margin: 4rem auto; display: grid; gap: .7rem; }
          #to { font-size: .85rem; color: #555; margin: .3rem 0; }
          .error { color: #b03a2e; margin: 0; }
          #log { overflow-wrap: anywhere; } form.send input { min-width: 0; }
          /* A phone (390 px): one column, nothing wider than the screen. */
          @media (max-width: 40rem) {
            main { grid-template-columns: 1fr; padding: .6rem; }
            header { flex-wrap: wrap; padding: .6rem; }
            form.login { margin: 2rem .8rem; }
            #log { height: 16rem; }
          }
        </style>
        </head>
        <body>
        {{BODY}}
        </body>
        </html>
        """#

    private static let login = #"""
        <form class="login" method="post" action="/login">
          <h1>WebSockets demo</h1>
          {{ERROR}}
          <label>Pick a name <input name="name" id="name" maxlength="32" required autofocus></label>
          <button id="join">Join the chat</button>
          <small>The name becomes your session (a cookie); the WebSockets server asks this site who you are.</small>
        </form>
        """#

    private static let chat = #"""
        <header><h1>WebSockets demo — signed in as <b id="me" data-id="{{ID}}">{{NAME}}</b></h1>
          <span id="status">connecting</span>
          <form method="post" action="/logout"><button id="logout">Sign out</button></form></header>
        <main>
          <aside><h2>People</h2><ul id="users"></ul><p id="to">Click a name to write privately.</p></aside>
          <section>
            <h2>Chat</h2>
            <div id="log"></div>
            <form class="send" id="send"><input id="text" autocomplete="off" placeholder="Say something"><button>Send</button></form>
            <p><button id="hello" type="button">Say hello to the site</button></p>
          </section>
        </main>
        <script src="/WebSockets/client.js"></script>
        <script>
        (function () {
          var ws = cs.WebSockets, me = Number(document.getElementById('me').dataset.id), privateTo = null;
          var log = document.getElementById('log'), statusBadge = document.getElementById('status');
          function line(text, kind) {
            var p = document.createElement('p'); p.textContent = text; if (kind) p.className = kind;
            log.appendChild(p); log.scrollTop = log.scrollHeight;
          }
          function showError(code, message) { line('Error ' + code + ': ' + message, 'error'); }
          var members = [], online = {};
          function render() {
            var list = document.getElementById('users'); list.innerHTML = '';
            members.forEach(function (user) {
              var li = document.createElement('li'), dot = document.createElement('span');
              dot.className = online[user.id] ? 'dot online' : 'dot';
              li.appendChild(dot); li.appendChild(document.createTextNode(user.name + (user.id === me ? ' (you)' : '')));
              li.dataset.id = user.id; if (user.id === privateTo) li.className = 'selected';
              li.onclick = function () {
                privateTo = privateTo === user.id || user.id === me ? null : user.id;
                document.getElementById('to').textContent = privateTo ? 'Writing privately to ' + user.name + ' (click again to stop).' : 'Click a name to write privately.';
                render();
              };
              list.appendChild(li);
            });
          }
          ws.on('Client/state', function (state) { statusBadge.textContent = state; statusBadge.className = state; })
            .on('Client/authentication', function () { line('Connected.', 'system'); }, showError)
            .on('users', function (data) { members = data.users; render(); })
            // Who is online comes from the server's presence: grey a grace period after a user's last tab closed.
            .on('Presence/snapshot', function (data) {
              online = {}; data.online.forEach(function (id) { online[id] = true; }); render();
            })
            .on('Presence/online', function (id) { online[id] = true; render(); })
            .on('Presence/offline', function (id) { delete online[id]; render(); })
            .on('chat', function (message) { line(message.from.name + ': ' + message.text); }, showError)
            .on('private', function (message) {
              line('(private) ' + message.from.name + ' → ' + message.to.name + ': ' + message.text, 'private');
            }, showError)
            .on('Server/close', function () { line('Signed out: this tab will not reconnect.', 'system'); });
          document.getElementById('send').onsubmit = function (event) {
            event.preventDefault();
            var input = document.getElementById('text');
            if (privateTo) ws.send('private', { to: privateTo, text: input.value });
            else ws.send('chat', input.value);
            input.value = '';
          };
          document.getElementById('hello').onclick = function () {
            ws.once('hello', function (reply) { line('Site says: ' + reply, 'system'); });
            ws.send('hello', document.getElementById('me').textContent);
          };
        })();
        </script>
        """#
}
