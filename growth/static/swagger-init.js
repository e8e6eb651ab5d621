// Starts Swagger UI on the API docs page. A static file, not inline: the CSP allows script-src 'self' only.
// The page sits inside the app's layout (navigation above), so Swagger UI's own top bar is left out.
window.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  if (!root || typeof window.SwaggerUIBundle !== "function") {
    return;
  }
  window.ui = window.SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null, // the public validator is on the internet, which the intranet cannot reach
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
