// Pre-fill the timezone field from the browser; the field stays editable and
// the form works without this script (the default is UTC).
(function () {
  var field = document.getElementById("timezone");
  if (!field || field.dataset.detect !== "yes") return;
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone) field.value = zone;
  } catch (e) { /* keep the default */ }
})();
