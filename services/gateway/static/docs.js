// The API reference at /docs: Swagger UI (installed from the npm registry by
// `make setup`) rendering the gateway's own /openapi.json.
const { SwaggerUIBundle } = window;

SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#api-docs",
  deepLinking: true,
  // Nothing leaves the page for a third-party validator.
  validatorUrl: null,
});
