extension ChatRoom {
    /// The chat page the example worker serves at `/chat/`: plain HTML and JavaScript, no build step.
    public static let page = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Durable chat</title>
        <style>
          body { font-family: system-ui, sans-serif; margin: 0; display: flex; flex-direction: column; height: 100vh; }
          header { padding: .6em 1em; background: #243447; color: white; }
          #join, #chat { padding: 1em; }
          #chat { display: none; flex: 1; flex-direction: column; min-height: 0; }
          #log { flex: 1; overflow-y: auto; border: 1px solid #ccc; padding: .5em; margin-bottom: .5em; }
          #log p { margin: .2em 0; }
          .system { color: #777; font-style: italic; }
          .error { color: #b00; }
          input { font-size: 1em; padding: .3em; }
        </style>
        </head>
        <body>
        <header>Durable chat — every room is one Durable Object</header>
        <form id="join">
          <label>Name <input id="name" maxlength="32" required></label>
          <label>Room <input id="room" value="lobby" required></label>
          <button id="join-button" type="submit">Join</button>
        </form>
        <div id="chat">
          <div id="log"></div>
          <form id="send"><input id="message" maxlength="256" autocomplete="off" size="60">
          <button id="send-button" type="submit">Send</button></form>
        </div>
        <script>
        const log = document.getElementById("log");
        function show(text, kind) {
          const line = document.createElement("p");
          line.textContent = text;
          if (kind) line.className = kind;
          log.appendChild(line);
          log.scrollTop = log.scrollHeight;
        }
        let socket;
        document.getElementById("join").addEventListener("submit", (event) => {
          event.preventDefault();
          const name = document.getElementById("name").value;
          const room = encodeURIComponent(document.getElementById("room").value);
          const scheme = location.protocol === "https:" ? "wss:" : "ws:";
          socket = new WebSocket(`${scheme}//${location.host}/chat/api/room/${room}/websocket`);
          socket.addEventListener("open", () => socket.send(JSON.stringify({ name })));
          socket.addEventListener("message", (message) => {
            const data = JSON.parse(message.data);
            if (data.error) show(data.error, "error");
            else if (data.joined) show(`${data.joined} joined`, "system");
            else if (data.quit) show(`${data.quit} left`, "system");
            else if (data.ready) document.body.dataset.ready = "true";
            else show(`${data.name}: ${data.message}`);
          });
          socket.addEventListener("close", (event) => show(`disconnected (${event.code} ${event.reason})`, "system"));
          document.getElementById("join").style.display = "none";
          document.getElementById("chat").style.display = "flex";
          document.getElementById("message").focus();
        });
        document.getElementById("send").addEventListener("submit", (event) => {
          event.preventDefault();
          const input = document.getElementById("message");
          if (input.value && socket) socket.send(JSON.stringify({ message: input.value }));
          input.value = "";
        });
        </script>
        </body>
        </html>
        """
}
