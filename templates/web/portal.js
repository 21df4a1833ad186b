// The @ autocomplete of the comment box: the only script of the portal;
// every page works without it. It lists the people this user may mention
// (GET …/mentionable?q=) and inserts the chosen one's @handle.
(function () {
  "use strict";
  var box = document.querySelector("textarea[data-mentionable]");
  var list = document.getElementById("mention-list");
  if (!box || !list) return;
  var url = box.getAttribute("data-mentionable");
  var start = -1, items = [], active = 0, seq = 0;

  function query() {
    var upto = box.value.slice(0, box.selectionStart);
    var m = /(^|\s)@([^\s@]{0,40})$/.exec(upto);
    if (!m) return null;
    start = upto.length - m[2].length - 1;
    return m[2];
  }
  function close() { list.hidden = true; list.textContent = ""; items = []; }
  function show(found) {
    list.textContent = "";
    items = found;
    active = 0;
    found.forEach(function (p, i) {
      var li = document.createElement("li");
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", i === 0 ? "true" : "false");
      li.dataset.handle = p.handle;
      li.textContent = p.name + " <" + p.email + "> @" + p.handle;
      li.addEventListener("mousedown", function (e) { e.preventDefault(); pick(i); });
      list.appendChild(li);
    });
    list.hidden = found.length === 0;
  }
  function pick(i) {
    var p = items[i];
    if (!p) return;
    var before = box.value.slice(0, start), after = box.value.slice(box.selectionStart);
    var text = "@" + p.handle + " ";
    box.value = before + text + after;
    var at = before.length + text.length;
    box.setSelectionRange(at, at);
    close();
    box.focus();
  }
  function mark() {
    Array.prototype.forEach.call(list.children, function (li, i) {
      li.setAttribute("aria-selected", i === active ? "true" : "false");
    });
  }
  box.addEventListener("input", function () {
    var q = query();
    if (q === null) { close(); return; }
    var mine = ++seq;
    fetch(url + "?q=" + encodeURIComponent(q), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (found) { if (mine === seq) show(found); })
      .catch(close);
  });
  box.addEventListener("keydown", function (e) {
    if (list.hidden) return;
    if (e.key === "ArrowDown") { active = Math.min(active + 1, items.length - 1); mark(); e.preventDefault(); }
    else if (e.key === "ArrowUp") { active = Math.max(active - 1, 0); mark(); e.preventDefault(); }
    else if (e.key === "Enter" || e.key === "Tab") { pick(active); e.preventDefault(); }
    else if (e.key === "Escape") { close(); }
  });
  box.addEventListener("blur", function () { setTimeout(close, 150); });
})();
