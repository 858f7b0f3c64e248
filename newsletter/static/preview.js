// The keyword preview as the reader types: 400 ms after the last change, the
// form is posted to its data-preview URL (newsletter/preview.py), which answers
// the inside of <section id="preview">. Without this script the form's
// "Preview my keywords" button does the same with a page load.
(function () {
  var form = document.querySelector("form[data-preview]");
  var target = document.getElementById("preview");
  if (!form || !target || !window.fetch || !window.FormData) return;
  var keywords = form.querySelector("#keywords");
  var replacements = form.querySelector("#include_replacements");
  var timer = null;
  var sent = 0; // only the answer to the latest request is shown

  function update() {
    var mine = ++sent;
    var body = new FormData(form);
    body.delete("preview");
    fetch(form.dataset.preview, { method: "POST", body: body, credentials: "same-origin" })
      .then(function (response) {
        return response.text().then(function (text) {
          if (mine !== sent) return;
          if (response.headers.get("X-Preview") === "1") {
            target.innerHTML = text;
          } else {
            say("The preview is not available right now.");
          }
        });
      })
      .catch(function () {
        if (mine === sent) say("The preview is not available right now.");
      });
  }

  function say(message) {
    var line = document.createElement("p");
    line.className = "hint";
    line.textContent = message;
    target.replaceChildren(line);
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(update, 400);
  }

  if (keywords) keywords.addEventListener("input", later);
  if (replacements) replacements.addEventListener("change", later);
  // The manage page opens with the reader's lines: show what they match at once.
  if (keywords && keywords.value.trim() && !target.children.length) update();
})();
