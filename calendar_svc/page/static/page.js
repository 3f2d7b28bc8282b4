// calendar-svc subscribers' page: each entry's times in the viewer's own zone, written
// from the <time datetime="...Z"> values the server rendered, and a Copy button. The page
// reads correctly without it (the times are in each entry's own zone).
"use strict";

(() => {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  const dateParts = new Intl.DateTimeFormat("en-US", {
    weekday: "short",
    day: "numeric",
    month: "short",
  });
  const clock = new Intl.DateTimeFormat("en-GB", {
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  });
  const shortName = new Intl.DateTimeFormat("en-US", { timeZoneName: "short" });
  const longOffset = new Intl.DateTimeFormat("en-US", { timeZoneName: "longOffset" });

  const part = (format, date, type) => {
    const found = format.formatToParts(date).find((p) => p.type === type);
    return found ? found.value : "";
  };

  // "Wed 3 Sep"
  const dayText = (date) =>
    `${part(dateParts, date, "weekday")} ${part(dateParts, date, "day")} ${part(dateParts, date, "month")}`;

  // "UTC+09:00", as the server writes offsets
  const offsetText = (date) => {
    const gmt = part(longOffset, date, "timeZoneName");
    return gmt === "GMT" || gmt === "" ? "UTC+00:00" : `UTC${gmt.slice(3)}`;
  };

  // "EDT", or "" where the browser knows no letters for the zone ("GMT+9")
  const abbreviation = (date) => {
    const name = part(shortName, date, "timeZoneName");
    return /^(GMT|UTC)([+-]|$)/.test(name) ? "" : name;
  };

  // "12:00 EDT (UTC-04:00)", or "01:00 (UTC+09:00)"
  const timeText = (date) => {
    const abbr = abbreviation(date);
    return `${clock.format(date)}${abbr ? ` ${abbr}` : ""} (${offsetText(date)})`;
  };

  const instant = (element) => {
    const value = element ? element.getAttribute("datetime") : null;
    const date = value ? new Date(value) : null;
    return date && !Number.isNaN(date.getTime()) ? date : null;
  };

  // A span per instant, so that a line breaks between times rather than inside one.
  const piece = (text) => {
    const span = document.createElement("span");
    span.className = "moment";
    span.textContent = text;
    return span;
  };

  let written = 0;
  for (const entry of document.querySelectorAll(".entry")) {
    const out = entry.querySelector(".viewer");
    const start = instant(entry.querySelector("time.own.start"));
    if (!out || !start) continue;
    const end = instant(entry.querySelector("time.own.end"));
    const parts = ["Your time: ", piece(`${dayText(start)}, ${timeText(start)}`)];
    if (end) {
      const sameDay = dayText(end) === dayText(start);
      parts.push(" – ", piece(sameDay ? timeText(end) : `${dayText(end)}, ${timeText(end)}`));
    }
    out.replaceChildren(...parts);
    out.hidden = false;
    written += 1;
  }
  if (written) {
    for (const note of document.querySelectorAll(".viewer-note")) {
      const label = note.querySelector(".viewer-zone");
      if (label) label.textContent = zone || "your browser's zone";
      note.hidden = false;
    }
  }

  // Copy buttons, shown only where the browser lets a page write to the clipboard.
  if (navigator.clipboard && window.isSecureContext) {
    for (const button of document.querySelectorAll("button[data-copy]")) {
      const field = document.getElementById(button.dataset.copy);
      const status = button.closest(".copy")?.querySelector(".copied");
      if (!field) continue;
      button.hidden = false;
      button.addEventListener("click", () => {
        navigator.clipboard.writeText(field.value).then(
          () => {
            if (status) status.textContent = "Copied.";
          },
          () => {
            field.select();
            if (status) status.textContent = "Select the address and copy it.";
          },
        );
      });
    }
  }

  // Printing shows the past days too.
  window.addEventListener("beforeprint", () => {
    for (const details of document.querySelectorAll("details")) details.open = true;
  });
})();
