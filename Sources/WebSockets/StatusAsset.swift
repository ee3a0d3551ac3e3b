import NIOHTTP1

/// The status page's styles and script, served from the binary (no CDN, no build step) with validators, never to
/// other origins, and revalidated at each load (`no-cache`) so that an upgrade's page never runs last release's
/// script.
struct StatusAsset: Sendable {
    let asset: StaticAsset

    func response(to request: HTTPServerRequest) -> HTTPServerResponse {
        var response = StatusPage.secured(asset.response(to: request))
        response.headers.remove(name: "Access-Control-Allow-Origin")
        response.headers.replaceOrAdd(name: "Cache-Control", value: "private, no-cache")
        return response
    }

    /// The demo's look, in one column on a phone (390 px) and nothing wider than the screen.
    static let style = StatusAsset(
        asset: StaticAsset(
            """
            :root { font-family: system-ui, sans-serif; color: #1d2430; background: #f4f6fa; }
            body { margin: 0; }
            header { display: flex; align-items: center; flex-wrap: wrap; gap: .6rem 1rem; padding: .8rem 1.2rem;
              background: #1d2430; color: #fff; }
            header h1 { font-size: 1.1rem; margin: 0; }
            header form { margin-left: auto; }
            .server { font-size: .85rem; color: #c9d2e3; overflow-wrap: anywhere; }
            .badge { font-size: .85rem; padding: .2rem .6rem; border-radius: 1rem; background: #777; }
            .badge.ok { background: #2e8b57; } .badge.failed { background: #b03a2e; }
            main { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; padding: 1rem 1.2rem; max-width: 72rem;
              margin: auto; }
            section, form.login { background: #fff; border-radius: .6rem; padding: 1rem; box-shadow: 0 1px 3px #0002;
              min-width: 0; }
            section.wide { grid-column: 1 / -1; }
            h2 { font-size: .95rem; margin: 0 0 .6rem; }
            .figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(9rem, 1fr)); gap: .6rem; }
            .figures div { display: flex; flex-direction: column; padding: .5rem .7rem; background: #f4f6fa;
              border-radius: .4rem; }
            .figures b { font-size: 1.5rem; font-variant-numeric: tabular-nums; }
            .figures span, .note { font-size: .85rem; color: #555; }
            .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(15rem, 1fr)); gap: .8rem; }
            figure { margin: 0; }
            figcaption { font-size: .85rem; color: #555; margin-bottom: .3rem; }
            svg { width: 100%; height: 5rem; background: #f4f6fa; border-radius: .4rem; display: block; }
            svg polyline { fill: none; stroke: #2f5fb3; stroke-width: 1.5; vector-effect: non-scaling-stroke; }
            table { width: 100%; border-collapse: collapse; font-size: .9rem; font-variant-numeric: tabular-nums; }
            th, td { text-align: left; padding: .3rem .4rem; border-bottom: 1px solid #e3e7ee;
              overflow-wrap: anywhere; }
            th { font-weight: 600; color: #555; }
            tr.gone td { color: #b03a2e; } tr.late td { color: #a06000; } tr.me td:first-child { font-weight: 600; }
            .scroll { overflow-x: auto; }
            ul.plain { list-style: none; margin: .4rem 0 0; padding: 0; font-size: .9rem; }
            form.send { display: flex; flex-wrap: wrap; gap: .5rem; }
            form.send input { flex: 1 1 9rem; min-width: 0; }
            input, button, select { font: inherit; padding: .45rem .7rem; border-radius: .4rem;
              border: 1px solid #c8cfdb; max-width: 100%; box-sizing: border-box; }
            button { background: #2f5fb3; color: #fff; border-color: #2f5fb3; cursor: pointer; }
            button.quiet { background: transparent; border-color: #8a94a6; padding: .2rem .6rem; }
            form.login { max-width: 22rem; margin: 4rem auto; display: grid; gap: .7rem; }
            .error { color: #b03a2e; margin: 0; }
            code { overflow-wrap: anywhere; }
            @media (max-width: 40rem) {
              main { grid-template-columns: 1fr; padding: .6rem; gap: .6rem; }
              header { padding: .6rem; }
              form.login { margin: 2rem .8rem; }
            }
            """, contentType: "text/css; charset=utf-8"))

    /// Reads `/WebSockets/status/data` every 2 s and draws it; sends the test message. Writes text, never HTML.
    static let script = StatusAsset(
        asset: StaticAsset(
            #"""
            'use strict';
            (() => {
              const $ = (id) => document.getElementById(id);
              const number = (n) => n >= 1e6 ? (n / 1e6).toFixed(2) + ' M' : n >= 1e4 ? (n / 1e3).toFixed(1) + ' k'
                : String(Math.round(n * 10) / 10);
              const bytes = (n) => n >= 1048576 ? (n / 1048576).toFixed(2) + ' MiB'
                : n >= 1024 ? (n / 1024).toFixed(1) + ' KiB' : Math.round(n) + ' B';
              const ms = (v) => v === null || v === undefined ? '–' : typeof v === 'string' ? v : v + ' ms';
              const text = (id, value) => { $(id).textContent = value; };
              function cell(row, value) {
                const td = document.createElement('td');
                td.textContent = value;
                row.appendChild(td);
              }
              function rows(table, list, fill) {
                const body = table.tBodies[0];
                body.replaceChildren();
                for (const item of list) {
                  const row = document.createElement('tr');
                  fill(row, item);
                  body.appendChild(row);
                }
              }
              // One polyline per chart, scaled to its largest value; the 15 minutes fill the width.
              function chart(svg, values, capacity) {
                const top = Math.max(1, ...values);
                const step = 300 / Math.max(1, capacity - 1);
                const start = capacity - values.length;
                const points = values.map((v, i) => ((start + i) * step).toFixed(1) + ',' + (78 - (v / top) * 74).toFixed(1));
                let line = svg.querySelector('polyline');
                if (!line) {
                  line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
                  svg.appendChild(line);
                }
                line.setAttribute('points', points.join(' '));
                svg.dataset.count = String(values.length);
                svg.dataset.last = String(values.length ? values[values.length - 1] : 0);
                svg.dataset.max = String(Math.max(0, ...values));
              }
              function draw(d) {
                text('server', d.server + ' · ' + d.version);
                text('authenticated', d.connections.authenticated);
                text('guests', d.connections.guests);
                text('unauthenticated', d.connections.unauthenticated);
                text('users-online', d.users_online);
                text('total', d.connections.total);
                text('http', d.connections.http);
                text('rate-in', number(d.rates.messages_in || 0));
                text('rate-out', number(d.rates.messages_out || 0));
                text('rate-bytes', bytes(d.rates.bytes_out || 0));
                const capacity = 15 * 60 / d.interval;
                chart($('chart-in'), d.chart.messages_in, capacity);
                chart($('chart-out'), d.chart.messages_out, capacity);
                chart($('chart-bytes'), d.chart.bytes_out, capacity);
                const site = [['session checks', d.site.session], ['message posts', d.site.message]];
                rows($('site'), site.filter((s) => s[1]), (row, [name, s]) => {
                  cell(row, name); cell(row, number(s.per_second)); cell(row, ms(s.p50_ms)); cell(row, ms(s.p99_ms));
                });
                text('lanes', 'Waiting: ' + d.site.waiting_sessions + ' session checks, ' + d.site.waiting_messages
                  + ' message posts; under way: ' + d.site.running + '; events held: ' + bytes(d.site.backlog_bytes) + '.');
                const failures = $('site-failures');
                failures.replaceChildren();
                for (const f of d.site.failures || []) {
                  const li = document.createElement('li');
                  li.className = 'error';
                  li.textContent = 'failed ' + f.reason.replace('/', ': ') + ' — ' + f.total + ' (' + f.per_second + '/s)';
                  failures.appendChild(li);
                }
                rows($('refusals'), d.refusals, (row, r) => {
                  row.dataset.reason = r.reason;
                  cell(row, r.kind + ': ' + r.reason); cell(row, r.total); cell(row, r.per_second);
                });
                $('no-refusals').hidden = d.refusals.length > 0;
                const cluster = $('cluster');
                cluster.hidden = !d.cluster;
                if (d.cluster) {
                  text('database', 'Database: ' + d.cluster.database
                    + (d.cluster.round_trip_ms === null ? '' : ' (' + d.cluster.round_trip_ms + ' ms)')
                    + (d.cluster.listening ? '; this server hears the cluster.' : '; this server does not hear the cluster now.'));
                  rows($('servers'), d.cluster.servers, (row, s) => {
                    row.className = s.state + (s.self ? ' me' : '');
                    row.dataset.address = s.address;
                    cell(row, s.address + (s.self ? ' (this one)' : ''));
                    cell(row, s.state);
                    cell(row, s.connections);
                    cell(row, s.state === 'gone' ? 'gone' : s.heartbeat_age + ' s ago');
                    cell(row, s.behind);
                  });
                }
              }
              let busy = false;
              async function refresh() {
                if (busy) return;
                busy = true;
                try {
                  const response = await fetch('/WebSockets/status/data', { cache: 'no-store', credentials: 'same-origin' });
                  if (response.status === 401) { location.reload(); return; }
                  if (!response.ok) throw new Error('status ' + response.status);
                  draw(await response.json());
                  $('state').textContent = 'live';
                  $('state').className = 'badge ok';
                } catch (error) {
                  $('state').textContent = 'unreachable';
                  $('state').className = 'badge failed';
                } finally {
                  busy = false;
                }
              }
              function json(value, fallback) {
                const trimmed = value.trim();
                return trimmed === '' ? fallback : JSON.parse(trimmed);
              }
              $('send').addEventListener('submit', async (event) => {
                event.preventDefault();
                const result = $('send-result');
                let body;
                try {
                  body = JSON.stringify([$('send-action').value, json($('send-details').value, null),
                    Number($('send-to').value), json($('send-target').value, null)]);
                } catch (error) {
                  result.textContent = 'Details and target must be JSON: ' + error.message;
                  return;
                }
                const response = await fetch('/WebSockets/status/send', {
                  method: 'POST', body, credentials: 'same-origin',
                  headers: { 'Content-Type': 'application/json', 'X-WebSockets-Status': '1' },
                });
                const answer = await response.json();
                result.textContent = response.ok
                  ? 'Accepted: ' + answer.accepted + (answer.delivered === undefined ? ' (delivered by each server of the cluster)' : '; delivered to ' + answer.delivered + ' connection(s) of this server.')
                  : 'Refused: ' + answer.error.message;
                result.dataset.delivered = answer.delivered === undefined ? '' : String(answer.delivered);
              });
              refresh();
              setInterval(refresh, 2000);
            })();
            """#, contentType: "text/javascript; charset=utf-8"))
}
