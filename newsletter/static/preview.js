// The keyword preview as the reader types: 400 ms after the last change, a
// <script src="/preview.js?keywords=..."> (newsletter/preview.py) is added; it
// calls window.keywordPreview with the HTML for <section id="preview">. A script
// element, not fetch(): the site's Content-Security-Policy allows scripts from
// the site and no other connections. Without this script the form's
// "Preview my keywords" button shows the same with a page load.
(function () {
  var form = document.querySelector("form[data-preview]");
  var target = document.getElementById("preview");
  var keywords = form && form.querySelector("#keywords");
  if (!form || !target || !keywords || !window.URLSearchParams) return;
  var replacements = form.querySelector("#include_replacements");
  var timer = null;
  var sent = 0; // only the answer to the latest request is shown
  var pending = null;
  // Past this the address may be refused by a proxy; the button still works.
  var MAX_URL = 3500;

  function say(message) {
    var line = document.createElement("p");
    line.className = "hint";
    line.textContent = message;
    target.replaceChildren(line);
  }

  window.keywordPreview = function (number, html) {
    if (number === sent) target.innerHTML = html;
  };

  function update() {
    var query = new URLSearchParams();
    query.set("keywords", keywords.value);
    if (replacements && replacements.checked) query.set("include_replacements", "on");
    query.set("n", String(++sent));
    // The preview in the page's language (newsletter/i18n.py; a script's answer sets no cookie).
    query.set("lang", document.documentElement.lang || "en");
    var url = form.dataset.preview + "?" + query.toString();
    if (url.length > MAX_URL) {
      say(form.dataset.tooLong || "Too long to preview as you type: use the Preview button.");
      return;
    }
    if (pending) pending.remove();
    var mine = sent;
    var script = document.createElement("script");
    script.src = url;
    script.onerror = function () {
      script.remove();
      if (mine === sent) say(form.dataset.unavailable || "The preview is not available right now.");
    };
    script.onload = function () { script.remove(); };
    pending = script;
    document.body.appendChild(script);
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(update, 400);
  }

  keywords.addEventListener("input", later);
  if (replacements) replacements.addEventListener("change", later);
  // The manage page opens with the reader's lines: show what they match at once.
  if (keywords.value.trim() && !target.children.length) update();
})();
