// GraphiQL at /graphql. The page (api/graphiql.py) has loaded React, ReactDOM,
// GraphiQL, its explorer plugin and graphql-ws's client from /static/vendor/
// before this runs.
"use strict";

(function () {
  var endpoint = window.location.origin + window.location.pathname;
  var socket = new URL(endpoint);
  socket.protocol = socket.protocol === "https:" ? "wss:" : "ws:";

  // -- the Headers pane, kept in this browser ---------------------------------------
  //
  // GraphiQL 3.8.3 keeps each tab's headers (shouldPersistHeaders), but on every
  // load, before its Headers editor exists, it also stores that editor's text as
  // empty ("graphiql:headers"). On the next load it looks for the stored tab
  // whose query, variables and headers equal the last ones stored, finds none
  // with empty headers, and opens a duplicate tab with empty headers; a second
  // browser tab starts with none. So the page keeps the pane's text itself, on
  // every change (typing, switching tabs), and gives it back to GraphiQL as
  // `headers` on load (the stored tab matches again) and as `defaultHeaders` (a
  // new tab starts with the headers of the one you were in). The key is in
  // GraphiQL's namespace, so its "Clear storage" setting clears it too.
  var HEADERS_KEY = "graphiql:studio:headers";

  function savedHeaders() {
    try {
      return window.localStorage.getItem(HEADERS_KEY);
    } catch (blocked) {
      return null; // storage disabled: nothing is kept
    }
  }

  function saveHeaders(text) {
    try {
      if (text) {
        window.localStorage.setItem(HEADERS_KEY, text);
      } else {
        window.localStorage.removeItem(HEADERS_KEY);
      }
    } catch (blocked) {
      // storage disabled or full: the headers live until the page closes
    }
  }

  // -- the fetcher ------------------------------------------------------------------
  //
  // Queries and mutations go over HTTP; subscriptions over a WebSocket to the same
  // path (graphql-transport-ws), one socket per subscription. The Headers pane's
  // JSON object is sent as HTTP headers and, for a subscription, as its socket's
  // connection_init payload. Header names are case-insensitive but payload keys
  // are not, so names are lower-cased: the server reads `authorization`.
  var overHttp = GraphiQL.createFetcher({ url: endpoint });

  // Close codes after which trying again cannot help: 4400 Bad Request, 4401
  // Unauthorized, 4403 Forbidden (our server: not signed in, or the token no longer
  // works), 4408 Connection initialisation timeout, 4429 Too many initialisation
  // requests (https://github.com/graphql/graphql-over-http/blob/main/rfcs/
  // GraphQLOverWebSocket.md).
  // graphql-ws's client retries 4403 and 4408 by default ("might grant access
  // after retry"), which kept GraphiQL spinning for 40 s before it showed them.
  var FINAL_CLOSES = [4400, 4401, 4403, 4408, 4429];
  var RETRIES = 3; // a dropped connection (1006...) is tried again this many times

  function isCloseEvent(value) {
    return value !== null && typeof value === "object" && "code" in value && "reason" in value;
  }

  function lowerCased(given) {
    var headers = {};
    Object.keys(given || {}).forEach(function (name) {
      headers[name.toLowerCase()] = given[name];
    });
    return headers;
  }

  // Whether the operation GraphiQL runs is a subscription: the one named
  // `operationName`, or the document's only operation.
  function isSubscription(params, options) {
    var parsed = options && options.documentAST;
    if (!parsed) {
      return false;
    }
    var operations = parsed.definitions.filter(function (definition) {
      return definition.kind === "OperationDefinition";
    });
    var chosen = operations.filter(function (operation) {
      return params.operationName
        ? operation.name && operation.name.value === params.operationName
        : operations.length === 1;
    })[0];
    return Boolean(chosen) && chosen.operation === "subscription";
  }

  // A failed subscription as a GraphQL response, as a query's would be over HTTP:
  // {"errors": [{"message": ..., "extensions": {"code": ...}}]}. Our server's close
  // reasons read "CODE: message" (api/websocket.py); an `error` message carries
  // GraphQL errors already.
  function asResponse(error) {
    if (Array.isArray(error)) {
      return { errors: error };
    }
    if (isCloseEvent(error)) {
      var coded = /^([A-Z][A-Z0-9_]*): ([\s\S]*)$/.exec(error.reason || "");
      if (coded) {
        return { errors: [{ message: coded[2], extensions: { code: coded[1] } }] };
      }
      var reason = error.reason ? ": " + error.reason : "";
      return {
        errors: [{ message: "The connection closed with " + error.code + reason + "." }],
      };
    }
    return { errors: [{ message: (error && error.message) || String(error) }] };
  }

  // One subscription as an Observable (what GraphiQL expects of a fetcher that
  // streams): its own graphql-ws client, signed in with `headers`, disposed when
  // the subscription ends or GraphiQL's ■ stops it. A failure is delivered as a
  // GraphQL response, then the stream completes.
  function subscription(params, headers) {
    return {
      subscribe: function (observer) {
        var ended = false;
        var dispose = null;
        var client = graphqlWs.createClient({
          url: socket.href,
          connectionParams: headers,
          lazy: true,
          retryAttempts: RETRIES,
          shouldRetry: function (error) {
            return isCloseEvent(error) && FINAL_CLOSES.indexOf(error.code) < 0;
          },
        });
        function end() {
          if (!ended) {
            ended = true;
            if (dispose) {
              dispose();
            }
            client.dispose();
          }
        }
        dispose = client.subscribe(params, {
          next: function (result) {
            if (!ended) {
              observer.next(result);
            }
          },
          error: function (error) {
            if (!ended) {
              observer.next(asResponse(error));
              end();
              observer.complete();
            }
          },
          complete: function () {
            if (!ended) {
              end();
              observer.complete();
            }
          },
        });
        return { unsubscribe: end };
      },
    };
  }

  function fetcher(params, options) {
    var headers = lowerCased(options && options.headers);
    if (isSubscription(params, options)) {
      return subscription(params, headers);
    }
    return overHttp(params, Object.assign({}, options, { headers: headers }));
  }

  // -- the page ---------------------------------------------------------------------

  // At most 60 columns, so it fits the editor of a narrow window.
  var welcome = [
    "# Storyboard Studio's GraphQL API. Run an operation",
    "# with Ctrl-Enter or the ▶ button. Docs and Explorer",
    "# on the left show everything there is.",
    "#",
    "# 1. Sign up (or logIn); copy the token from the result:",
    "#",
    "#      mutation SignUp {",
    "#        signUp(input: {",
    '#          email: "ann@example.com"',
    '#          password: "correct horse"',
    '#          name: "Ann"',
    "#        }) {",
    "#          token",
    "#          userErrors { code message }",
    "#        }",
    "#      }",
    "#",
    "# 2. Put it in the Headers pane below; every query,",
    "#    mutation and subscription then runs as you. The",
    "#    headers are kept in this browser, for every tab,",
    "#    until you clear them:",
    "#",
    '#      {"Authorization": "Bearer <token>"}',
    "#",
    "# 3. Run this query. A subscription (projectEvents,",
    "#    iterationStatus, animationStatus) streams its",
    "#    messages here over a WebSocket until you press ■.",
    "",
    "query Me {",
    "  viewer {",
    "    name",
    "    email",
    "  }",
    "  projects(first: 5) {",
    "    edges {",
    "      node {",
    "        id",
    "        title",
    "      }",
    "    }",
    "  }",
    "}",
    "",
  ].join("\n");

  // The same objects on every render, so re-rendering (below) changes nothing else.
  var plugins = [GraphiQLPluginExplorer.explorerPlugin()];
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  var shown = savedHeaders();

  function render(defaultHeaders) {
    root.render(
      React.createElement(GraphiQL, {
        fetcher: fetcher,
        plugins: plugins,
        defaultQuery: welcome,
        // Set once, on load (GraphiQL replaces the pane's text when it changes).
        headers: shown === null ? undefined : shown,
        defaultHeaders: defaultHeaders === null ? undefined : defaultHeaders,
        onEditHeaders: keep,
        defaultEditorToolsVisibility: "headers",
        isHeadersEditorEnabled: true,
        shouldPersistHeaders: true,
        inputValueDeprecation: true,
      })
    );
  }

  // Each change of the pane is saved, and GraphiQL rendered again with it as
  // defaultHeaders (React changes only what differs).
  var kept = shown;
  function keep(text) {
    if (text !== kept) {
      kept = text;
      saveHeaders(text);
      render(text || null);
    }
  }

  render(kept);
})();
