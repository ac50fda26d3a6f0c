// GraphiQL at /graphql. The page (api/graphiql.py) has loaded React, ReactDOM,
// GraphiQL and its explorer plugin from /static/vendor/ before this runs.
"use strict";

(function () {
  var endpoint = window.location.origin + window.location.pathname;
  var socket = new URL(endpoint);
  socket.protocol = socket.protocol === "https:" ? "wss:" : "ws:";

  // Queries and mutations go over HTTP; subscriptions over a WebSocket to the same
  // path (graphql-transport-ws), one socket per subscription.
  var send = GraphiQL.createFetcher({ url: endpoint, subscriptionUrl: socket.href });

  // The Headers pane's JSON object is sent as HTTP headers and, for a subscription,
  // as its socket's connection_init payload (GraphiQL passes the headers as
  // connectionParams). Header names are case-insensitive but payload keys are not,
  // so names are lower-cased: the server reads `authorization` from the payload.
  function fetcher(params, options) {
    var given = (options && options.headers) || {};
    var headers = {};
    Object.keys(given).forEach(function (name) {
      headers[name.toLowerCase()] = given[name];
    });
    return send(params, Object.assign({}, options, { headers: headers }));
  }

  var welcome = [
    "# Storyboard Studio's GraphQL API. Run an operation with",
    "# Ctrl-Enter or the ▶ button; Docs and Explorer on the left",
    "# show everything there is.",
    "#",
    "# 1. Sign up (or logIn) and copy the token from the result:",
    "#",
    "#      mutation SignUp {",
    '#        signUp(input: {email: "ann@example.com",',
    '#                       password: "correct horse", name: "Ann"}) {',
    "#          token",
    "#          userErrors { code message }",
    "#        }",
    "#      }",
    "#",
    "# 2. Put it in the Headers pane below; every query, mutation",
    "#    and subscription then runs as you (the headers are kept",
    "#    in this browser until you clear them):",
    "#",
    '#      {"Authorization": "Bearer <token>"}',
    "#",
    "# 3. Run this query. A subscription (projectEvents,",
    "#    iterationStatus, animationStatus) streams its messages",
    "#    here over a WebSocket until you press ■.",
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

  var explorer = GraphiQLPluginExplorer.explorerPlugin();
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      plugins: [explorer],
      defaultQuery: welcome,
      defaultEditorToolsVisibility: "headers",
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
      inputValueDeprecation: true,
    })
  );
})();
