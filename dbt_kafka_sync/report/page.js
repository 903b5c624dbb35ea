// Filters the tables of failed rows and messages by key: rows carry their key in data-key.
// A link may name the key to look for: report.html#key=42.
(function () {
  "use strict";
  var input = document.getElementById("key-search");
  var count = document.getElementById("key-count");
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-key]"));

  function filter() {
    var wanted = input.value.toLowerCase();
    var shown = 0;
    rows.forEach(function (row) {
      var match = row.getAttribute("data-key").toLowerCase().indexOf(wanted) !== -1;
      row.hidden = !match;
      shown += match ? 1 : 0;
    });
    count.textContent = wanted ? shown + " of " + rows.length + " rows match" : "";
  }

  input.addEventListener("input", filter);
  var named = /[#&]key=([^&]*)/.exec(window.location.hash);
  if (named) {
    input.value = decodeURIComponent(named[1]);
  }
  filter();
  document.documentElement.setAttribute("data-ready", "true");
})();
