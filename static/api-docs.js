// Starts Swagger UI on /api/docs from a file (the CSP forbids inline scripts).
(function () {
  var root = document.getElementById("api-reference");
  if (!root || !window.SwaggerUIBundle) return;
  window.SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    domNode: root,
    deepLinking: true,
    tryItOutEnabled: false,
    persistAuthorization: false
  });
})();
