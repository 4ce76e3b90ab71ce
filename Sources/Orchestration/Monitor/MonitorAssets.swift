import Presentation

/// The live monitor's stylesheet and script: fixed resources compiled into the binary and served
/// at fixed routes (never a file by path), so pages need no inline script or style and the
/// Content-Security-Policy can say `script-src 'self'; style-src 'self'`.
enum MonitorAssets {
    static let cssPath = "/assets/monitor.css"
    static let scriptPath = "/assets/monitor.js"

    /// The report's stylesheet and what the monitor adds.
    static let css: [UInt8] = Array((HTMLReport.css + "\n" + extraCSS).utf8)
    static let script: [UInt8] = Array(javaScript.utf8)

    static let extraCSS = """
    .topbar{display:flex;gap:18px;align-items:center;padding:8px 20px;background:#1f2328;color:#fff;font-size:14px}
    .topbar a{color:#fff}.topbar .brand{font-weight:700;margin-right:8px}
    .conn{margin-left:auto;font-size:12px;color:#c9d1d9}.conn.live{color:#7ee787}.conn.lost{color:#ffa198}
    .filters-form{display:flex;gap:10px;align-items:center;flex-wrap:wrap;margin:4px 0 10px}
    .filters-form select,.filters-form button{font:inherit;padding:2px 6px}
    table.runs td.progress{white-space:nowrap}
    progress{width:110px;height:10px;vertical-align:middle}
    .gone{color:var(--bad);font-size:12px;white-space:nowrap}
    .livebar{margin:10px 20px 0;padding:6px 10px;border-radius:6px;max-width:1240px}
    .livebar.on{background:var(--runf);color:var(--run)}.livebar.gone{background:var(--badf);color:var(--bad)}
    .livebar.done{background:var(--panel);color:var(--muted)}
    .report header,.report main{max-width:1280px}
    section.events{max-width:1280px;margin:0 auto;padding:0 20px}
    #event-log,.events-list{font-size:12px;max-height:260px;overflow:auto;border:1px solid var(--line);border-radius:6px;
    padding:6px 6px 6px 46px;margin:4px 0;background:var(--panel)}
    #event-log:empty{display:none}
    #agents header,#agents main{max-width:1280px;margin:0 auto;padding:0 20px}
    #agents header{padding-top:16px}
    """

    static let javaScript = #"""
    // omnibase-agents live monitor: follows the page's event stream and keeps it current.
    // Served as a fixed resource; the page has no inline script (Content-Security-Policy).
    (function () {
      'use strict';
      var body = document.body;

      function format(seconds) {
        if (seconds < 10) { return seconds.toFixed(2) + 's'; }
        if (seconds < 60) { return seconds.toFixed(1) + 's'; }
        var whole = Math.floor(seconds);
        var rest = whole % 60;
        return Math.floor(whole / 60) + 'm' + (rest < 10 ? '0' : '') + rest + 's';
      }

      function tick() {
        var now = Date.now();
        var timers = document.querySelectorAll('[data-since]');
        for (var i = 0; i < timers.length; i++) {
          var since = Number(timers[i].getAttribute('data-since'));
          if (since > 0) { timers[i].textContent = format(Math.max(0, now - since) / 1000); }
        }
      }
      setInterval(tick, 1000);
      tick();

      var stream = body.getAttribute('data-stream');
      if (!stream || !window.EventSource) { return; }
      var conn = document.getElementById('conn');
      function state(text, cls) {
        if (!conn) { return; }
        conn.textContent = text;
        conn.className = 'conn ' + cls;
      }

      // Replaces a region's HTML, keeping what the reader chose: the table filter, the open
      // log blocks and the scroll positions.
      function swap(id, html) {
        var region = document.getElementById(id);
        if (!region) { return; }
        var checked = region.querySelector('input.filter:checked');
        var checkedID = checked ? checked.id : null;
        var open = {};
        var details = region.querySelectorAll('tr.step details');
        for (var i = 0; i < details.length; i++) {
          var row = details[i].closest('tr');
          var key = (row ? row.id : '') + '/' + Array.prototype.indexOf.call(row.querySelectorAll('details'), details[i]);
          open[key] = details[i].open;
        }
        var scrolls = [];
        var boxes = region.querySelectorAll('.scroll');
        for (var j = 0; j < boxes.length; j++) { scrolls.push([boxes[j].scrollLeft, boxes[j].scrollTop]); }
        region.innerHTML = html;
        if (checkedID) {
          var radio = document.getElementById(checkedID);
          if (radio) { radio.checked = true; }
        }
        var after = region.querySelectorAll('tr.step details');
        for (var k = 0; k < after.length; k++) {
          var row2 = after[k].closest('tr');
          var key2 = (row2 ? row2.id : '') + '/' + Array.prototype.indexOf.call(row2.querySelectorAll('details'), after[k]);
          if (key2 in open) { after[k].open = open[key2]; }
        }
        var boxes2 = region.querySelectorAll('.scroll');
        for (var m = 0; m < boxes2.length && m < scrolls.length; m++) {
          boxes2[m].scrollLeft = scrolls[m][0];
          boxes2[m].scrollTop = scrolls[m][1];
        }
        tick();
      }

      function logEvent(event) {
        var list = document.getElementById('event-log');
        if (!list) { return; }
        var item = document.createElement('li');
        item.value = event.seq;
        var text = event.ts + ' ' + event.type;
        if (event.step_id) { text += ' ' + event.step_id; }
        if (event.attempt) { text += ' #' + event.attempt; }
        item.textContent = text;
        list.insertBefore(item, list.firstChild);
        var max = Number(list.getAttribute('data-max')) || 50;
        while (list.children.length > max) { list.removeChild(list.lastChild); }
      }

      var source = new EventSource(stream);
      source.onopen = function () { state('live', 'live'); };
      source.onerror = function () { state('reconnecting', 'lost'); };
      source.addEventListener('event', function (message) {
        try {
          var event = JSON.parse(message.data);
          body.setAttribute('data-seq', String(event.seq));
          logEvent(event);
        } catch (error) { /* not an event: ignored */ }
      });
      source.addEventListener('render', function (message) { swap('live', message.data); });
      source.addEventListener('runs', function (message) { swap('runs-body', message.data); });
      source.addEventListener('agents', function (message) { swap('agents', message.data); });
      source.addEventListener('end', function () {
        state('finished', 'done');
        body.setAttribute('data-finished', 'true');
        source.close();
      });
    })();

    """#
}
