// Start-up of the API docs page (/schema), in a file so that the page has no inline script.
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: true,  // the key pasted in "Authorize" survives a reload
    tryItOutEnabled: false,
    validatorUrl: null,  // no badge fetched from an online validator
  });
});
