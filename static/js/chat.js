// The chat component (SPEC §5): the thread of one chat over the WebSocket /ws/chats/<id>/,
// plus the sidebar of the chat page. Plain JS, no build step.
//
// Stored messages arrive from the REST API with `content_html` rendered and sanitised on the
// server (Markdown + Pygments + nh3), which is the only HTML ever put into the page. While
// an answer streams, its text is shown through a small Markdown subset built with DOM nodes
// and textContent only (code fences, inline code, bold, http(s) links, lists, headings);
// when the run ends the thread is fetched again and the server's HTML replaces it.
//
// Every event of a run carries `seq`; events at or below the last seq seen for that run are
// dropped, so a resume after a reconnect (which replays stored events) never duplicates text.
(function () {
  "use strict";

  // --- helpers ------------------------------------------------------------------------------

  function csrfToken() {
    if (window.AgentStore && window.AgentStore.csrfToken) return window.AgentStore.csrfToken();
    var m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "text") node.textContent = value;
        else if (key === "className") node.className = value;
        else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
        else node.setAttribute(key, value === true ? "" : value);
      });
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function loadStrings() {
    var node = document.getElementById("chat-strings");
    try {
      return node ? JSON.parse(node.textContent) : {};
    } catch (e) {
      return {};
    }
  }
  var STRINGS = loadStrings();

  // Translated strings come from the page (json_script); "%(name)s" placeholders as in Django.
  function t(key, vars) {
    var text = STRINGS[key] || key;
    if (vars) {
      text = text.replace(/%\((\w+)\)s/g, function (_, name) {
        return vars[name] === undefined ? "" : String(vars[name]);
      });
    }
    return text;
  }

  function api(method, url, body) {
    var options = {
      method: method,
      credentials: "same-origin",
      headers: {"Accept": "application/json", "X-CSRFToken": csrfToken()},
    };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (payload) {
        if (!response.ok || (payload && payload.code && payload.code !== 0)) {
          var error = new Error((payload && payload.message) || response.statusText);
          error.code = payload && payload.code;
          error.details = payload && payload.details;
          throw error;
        }
        return payload ? payload.data : null;
      });
    });
  }

  function formatDuration(ms) {
    if (ms === null || ms === undefined || isNaN(ms)) return "";
    if (ms < 1000) return t("%(n)s ms", {n: Math.round(ms)});
    return t("%(n)s s", {n: (ms / 1000).toFixed(1)});
  }

  function pretty(value) {
    if (value === null || value === undefined || value === "") return "";
    if (typeof value === "string") {
      try {
        return JSON.stringify(JSON.parse(value), null, 2);
      } catch (e) {
        return value;
      }
    }
    try {
      return JSON.stringify(value, null, 2);
    } catch (e) {
      return String(value);
    }
  }

  // --- streaming Markdown (a safe subset; DOM nodes only) -----------------------------------

  var INLINE = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|(\[[^\]\n]+\]\((https?:\/\/[^\s)]+)\))/g;

  function renderInline(text, parent) {
    var last = 0;
    var match;
    INLINE.lastIndex = 0;
    while ((match = INLINE.exec(text)) !== null) {
      if (match.index > last) parent.appendChild(document.createTextNode(text.slice(last, match.index)));
      if (match[1]) {
        parent.appendChild(el("code", {text: match[1].slice(1, -1)}));
      } else if (match[2]) {
        parent.appendChild(el("strong", {text: match[2].slice(2, -2)}));
      } else if (match[3]) {
        var label = match[3].slice(1, match[3].indexOf("]("));
        parent.appendChild(el("a", {href: match[4], rel: "noopener noreferrer nofollow",
                                    target: "_blank", text: label}));
      }
      last = INLINE.lastIndex;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function renderStreamingMarkdown(text) {
    var fragment = document.createDocumentFragment();
    var lines = text.split("\n");
    var i = 0;
    var paragraph = [];
    var list = null;

    function flushParagraph() {
      if (!paragraph.length) return;
      var p = el("p");
      paragraph.forEach(function (line, index) {
        if (index) p.appendChild(el("br"));
        renderInline(line, p);
      });
      fragment.appendChild(p);
      paragraph = [];
    }
    function closeList() {
      list = null;
    }

    while (i < lines.length) {
      var line = lines[i];
      var fence = line.match(/^\s*```\s*([\w+-]*)/);
      if (fence) {
        flushParagraph();
        closeList();
        var code = [];
        i += 1;
        while (i < lines.length && !/^\s*```\s*$/.test(lines[i])) {
          code.push(lines[i]);
          i += 1;
        }
        var codeNode = el("code", {text: code.join("\n")});
        if (fence[1]) codeNode.className = "language-" + fence[1];
        fragment.appendChild(el("pre", {className: "code-stream"}, [codeNode]));
        i += 1; // the closing fence (or past the end while it is still streaming)
        continue;
      }
      var heading = line.match(/^(#{1,6})\s+(.*)$/);
      var bullet = line.match(/^\s*[-*+]\s+(.*)$/);
      var numbered = line.match(/^\s*(\d+)[.)]\s+(.*)$/);
      if (!line.trim()) {
        flushParagraph();
        closeList();
      } else if (heading) {
        flushParagraph();
        closeList();
        var h = el("h" + Math.min(6, heading[1].length + 2));
        renderInline(heading[2], h);
        fragment.appendChild(h);
      } else if (bullet || numbered) {
        flushParagraph();
        var tag = bullet ? "ul" : "ol";
        if (!list || list.tagName.toLowerCase() !== tag) {
          list = el(tag);
          fragment.appendChild(list);
        }
        var li = el("li");
        renderInline(bullet ? bullet[1] : numbered[2], li);
        list.appendChild(li);
      } else {
        closeList();
        paragraph.push(line);
      }
      i += 1;
    }
    flushParagraph();
    return fragment;
  }

  // --- messages from the API ----------------------------------------------------------------

  // One shape for the page, whatever optional fields the API adds.
  function normalise(m) {
    var meta = m.metadata || {};
    var siblings = m.siblings || {};
    return {
      id: String(m.id),
      parentId: m.parent_id || null,
      role: m.role,
      content: m.content || "",
      html: m.content_html,
      status: m.status,
      type: m.message_type || "text",
      runId: m.run_id ? String(m.run_id) : null,
      runStatus: m.run_status || null,
      metadata: meta,
      version: m.agent_version || meta.agent_version || "",
      siblingIds: siblings.ids || [],
      // The API counts siblings from 1; the switcher works with array positions.
      siblingIndex: siblings.index !== undefined ? siblings.index - 1 : 0,
      siblingCount: siblings.count || 1,
      createdAt: m.created_at,
    };
  }

  var RUNNING_STATUSES = {pending: true, running: true};

  // --- the chat component -------------------------------------------------------------------

  function ChatView(root) {
    this.root = root;
    this.chatId = root.getAttribute("data-chat-id");
    this.apiBase = root.getAttribute("data-api");
    this.wsPath = root.getAttribute("data-ws");
    this.agentName = root.getAttribute("data-agent-name") || t("Assistant");
    this.readOnly = root.hasAttribute("data-readonly");
    this.thread = root.querySelector("[data-thread]");
    this.list = root.querySelector("[data-messages]");
    this.empty = root.querySelector("[data-empty]");
    this.earlier = root.querySelector("[data-load-earlier]");
    this.status = root.querySelector("[data-status]");
    this.form = root.querySelector("[data-composer]");
    this.input = root.querySelector("[data-input]");
    this.sendButton = root.querySelector("[data-send]");
    this.stopButton = root.querySelector("[data-stop]");
    this.messages = [];
    this.nodes = {};
    this.runs = {};
    this.activeRunId = null;
    this.pending = null;
    this.outbox = [];
    this.ready = false;
    this.hasMore = false;
    this.ws = null;
    this.attempt = 0;
    this.closedByUs = false;
    this.reloadTimer = null;
    this.bind();
    this.load().then(this.connect.bind(this), this.connect.bind(this));
  }

  ChatView.prototype.bind = function () {
    var self = this;
    if (this.form) {
      this.form.addEventListener("submit", function (e) {
        e.preventDefault();
        self.submit();
      });
    }
    if (this.input) {
      this.input.addEventListener("keydown", function (e) {
        if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
          e.preventDefault();
          self.submit();
        }
      });
      this.input.addEventListener("input", function () { self.autosize(); });
    }
    if (this.stopButton) this.stopButton.addEventListener("click", function () { self.stop(); });
    if (this.earlier) this.earlier.addEventListener("click", function () { self.loadEarlier(); });
    var upgrade = this.root.querySelector("[data-upgrade]");
    if (upgrade) {
      upgrade.addEventListener("click", function () {
        upgrade.disabled = true;
        api("POST", self.apiBase + "/upgrade", {}).then(function () {
          window.location.reload();
        }, function (error) {
          upgrade.disabled = false;
          self.showError(error.message);
        });
      });
    }
    window.addEventListener("beforeunload", function () {
      self.closedByUs = true;
      if (self.ws) self.ws.close();
    });
  };

  ChatView.prototype.autosize = function () {
    if (!this.input) return;
    this.input.style.height = "auto";
    this.input.style.height = Math.min(this.input.scrollHeight + 2, 192) + "px";
  };

  // --- loading ------------------------------------------------------------------------------

  ChatView.prototype.fetchPage = function (beforeId) {
    var url = this.apiBase + "/messages?limit=50";
    if (beforeId) url += "&before_id=" + encodeURIComponent(beforeId);
    return api("GET", url).then(function (data) {
      var items = (data && data.items) || [];
      var hasMore = !!(data && data.has_more);
      return {items: items.map(normalise), hasMore: hasMore};
    });
  };

  ChatView.prototype.load = function () {
    var self = this;
    return this.fetchPage(null).then(function (page) {
      self.messages = page.items;
      self.hasMore = page.hasMore;
      self.renderAll(true);
      self.detectActiveRun();
    }, function (error) {
      self.showError(error.message);
      throw error;
    });
  };

  ChatView.prototype.reload = function () {
    var self = this;
    clearTimeout(this.reloadTimer);
    var stick = this.nearBottom();
    return this.fetchPage(null).then(function (page) {
      self.messages = page.items;
      self.hasMore = page.hasMore;
      self.renderAll(stick);
      self.detectActiveRun();
    }, function (error) {
      self.showError(error.message);
    });
  };

  ChatView.prototype.loadEarlier = function () {
    var self = this;
    if (!this.messages.length) return;
    var first = this.messages[0].id;
    var previousHeight = this.thread.scrollHeight;
    this.earlier.disabled = true;
    this.fetchPage(first).then(function (page) {
      self.messages = page.items.concat(self.messages);
      self.hasMore = page.hasMore;
      self.renderAll(false);
      self.thread.scrollTop += self.thread.scrollHeight - previousHeight;
      self.earlier.disabled = false;
    }, function (error) {
      self.earlier.disabled = false;
      self.showError(error.message);
    });
  };

  // The answer still being written: its assistant message is "sending".
  ChatView.prototype.detectActiveRun = function () {
    var last = this.messages[this.messages.length - 1];
    if (last && last.role === "assistant" && last.status === "sending" && last.runId &&
        (!last.runStatus || RUNNING_STATUSES[last.runStatus])) {
      var run = this.ensureRun(last.runId);
      run.assistantId = last.id;
      if (!run.finished) this.setActive(last.runId);
      if (this.ready) this.resume(run);
    } else if (this.activeRunId && !this.pending) {
      this.setActive(null);
    }
  };

  // --- rendering ----------------------------------------------------------------------------

  ChatView.prototype.nearBottom = function () {
    var th = this.thread;
    return th.scrollHeight - th.scrollTop - th.clientHeight < 120;
  };

  ChatView.prototype.scrollToBottom = function () {
    this.thread.scrollTop = this.thread.scrollHeight;
  };

  ChatView.prototype.renderAll = function (stick) {
    var self = this;
    this.nodes = {};
    this.list.textContent = "";
    this.messages.forEach(function (m) {
      var node = self.renderMessage(m);
      self.nodes[m.id] = node;
      self.list.appendChild(node);
    });
    // A turn the server has not stored yet (or that this page of messages predates) stays.
    var pending = this.pending;
    if (pending) {
      [[pending.userNode, pending.userMessage], [pending.assistantNode, pending.assistantMessage]]
        .forEach(function (pair) {
          var node = pair[0];
          var id = node && node.getAttribute("data-id");
          if (!node || (id && self.nodes[id] && self.nodes[id] !== node)) return;
          if (id) self.nodes[id] = node;
          self.messages.push(pair[1]);
          self.list.appendChild(node);
        });
    }
    if (this.earlier) this.earlier.hidden = !this.hasMore;
    this.updateEmpty();
    if (stick) this.scrollToBottom();
  };

  ChatView.prototype.updateEmpty = function () {
    if (this.empty) this.empty.hidden = this.list.children.length > 0;
  };

  ChatView.prototype.renderMessage = function (m) {
    var isUser = m.role === "user";
    var failed = m.status === "failed" || m.type === "error";
    var node = el("li", {
      className: "msg " + (isUser ? "msg-user" : "msg-assistant") + (failed ? " msg-error" : ""),
      "data-id": m.id,
      "data-role": m.role,
    });
    var author = el("div", {className: "msg-author"}, [
      el("span", {text: isUser ? t("You") : this.agentName}),
    ]);
    if (!isUser && m.version) author.appendChild(el("span", {className: "version-badge", text: "v" + m.version}));
    if (m.metadata.cancelled) author.appendChild(el("span", {className: "msg-flag stopped", text: t("Stopped")}));
    if (failed) author.appendChild(el("span", {className: "msg-flag failed", text: t("Failed")}));
    node.appendChild(author);

    var bubble = el("div", {className: "msg-bubble"});
    var run = m.runId ? this.runs[m.runId] : null;
    var streaming = !isUser && m.status === "sending";
    if (!isUser) {
      var tools = el("div", {className: "msg-tools", "data-tools": ""});
      var calls = (streaming && run) ? this.runToolList(run) : (m.metadata.tool_calls || []);
      calls.forEach(function (call) { tools.appendChild(this.renderToolCall(call)); }, this);
      tools.hidden = !calls.length;
      bubble.appendChild(tools);
    }
    var body = el("div", {className: "msg-body", "data-body": ""});
    if (isUser) {
      body.textContent = m.content;
    } else if (streaming) {
      node.classList.add("msg-streaming");
      node.setAttribute("aria-busy", "true"); // read once complete, not word by word
      if (run && run.text) body.appendChild(renderStreamingMarkdown(run.text));
      else body.appendChild(this.typing());
    } else if (m.html !== undefined && m.html !== null) {
      // Rendered and sanitised by the server (agents.rendering: Markdown → nh3 allow-list).
      body.innerHTML = m.html;
    } else {
      body.appendChild(renderStreamingMarkdown(m.content));
    }
    bubble.appendChild(body);
    var citations = m.metadata.citations;
    if (!isUser && Array.isArray(citations) && citations.length) bubble.appendChild(this.renderSources(citations));
    if (failed) {
      var error = m.metadata.error || {};
      bubble.appendChild(el("p", {className: "msg-error-text", role: "alert",
                                  text: error.message || t("The answer failed.")}));
    }
    node.appendChild(bubble);
    node.appendChild(this.renderActions(m));
    return node;
  };

  ChatView.prototype.typing = function () {
    return el("span", {className: "msg-typing", "aria-label": t("Thinking…")},
              [el("span"), el("span"), el("span")]);
  };

  ChatView.prototype.renderSources = function (citations) {
    var list = el("ol");
    citations.forEach(function (c) {
      var label = c.title || c.source || c.document || "";
      var text = c.text || c.snippet || c.content || "";
      list.appendChild(el("li", null, [
        label ? el("strong", {text: label}) : null,
        label && text ? " — " : null,
        text ? String(text).slice(0, 300) : null,
      ]));
    });
    return el("details", {className: "tool-call sources"}, [
      el("summary", null, [el("span", {className: "tool-kind", text: t("Sources")}),
                           el("span", {className: "tool-status", text: String(citations.length)})]),
      el("div", {className: "tool-call-body"}, [list]),
    ]);
  };

  ChatView.prototype.renderToolCall = function (call) {
    var retrieval = call.name === "knowledge_search" || call.kind === "retrieval";
    var status = call.status || "";
    var statusText = {
      pending: t("Preparing…"), running: t("Running…"), completed: t("Done"),
      failed: t("Failed"), cancelled: t("Cancelled"), awaiting_approval: t("Waiting for approval"),
    }[status] || status;
    var duration = formatDuration(call.duration_ms);
    var summary = el("summary", null, [
      el("span", {className: "tool-kind", text: retrieval ? t("Sources") : t("Tool")}),
      el("span", {className: "tool-name", text: retrieval ? t("Retrieved sources") : call.name}),
      el("span", {className: "tool-status" + (status === "failed" ? " failed" : ""),
                  text: [statusText, duration].filter(Boolean).join(" · ")}),
    ]);
    var body = el("div", {className: "tool-call-body"});
    var args = pretty(call.input !== undefined ? call.input : call.args);
    body.appendChild(el("h4", {text: retrieval ? t("Query") : t("Arguments")}));
    body.appendChild(el("pre", {text: args || "{}"}));
    if (call.output !== undefined && call.output !== null && call.output !== "") {
      body.appendChild(el("h4", {text: retrieval ? t("Passages") : t("Result")}));
      body.appendChild(el("pre", {text: pretty(call.output)}));
    }
    return el("details", {className: "tool-call", "data-tool-call": call.id || ""}, [summary, body]);
  };

  ChatView.prototype.renderActions = function (m) {
    var self = this;
    var actions = el("div", {className: "msg-actions"});
    var busy = !!this.activeRunId || !!this.pending;
    if (m.siblingCount && m.siblingCount > 1) {
      var index = (m.siblingIndex || 0);
      var ids = m.siblingIds || [];
      var prev = el("button", {type: "button", "aria-label": t("Previous version"), text: "<",
                               disabled: busy || index <= 0 || !ids[index - 1]});
      var next = el("button", {type: "button", "aria-label": t("Next version"), text: ">",
                               disabled: busy || index >= m.siblingCount - 1 || !ids[index + 1]});
      prev.addEventListener("click", function () { self.switchBranch(ids[index - 1]); });
      next.addEventListener("click", function () { self.switchBranch(ids[index + 1]); });
      actions.appendChild(el("span", {className: "branch-switch", "data-branch": ""}, [
        prev,
        el("span", {"data-branch-label": "", text: (index + 1) + "/" + m.siblingCount}),
        next,
      ]));
    }
    if (this.readOnly) return actions;
    if (m.role === "user") {
      actions.appendChild(el("button", {type: "button", text: t("Edit"), disabled: busy,
                                        onclick: function () { self.startEdit(m); }}));
    } else if (m.role === "assistant" && m.status !== "sending") {
      actions.appendChild(el("button", {type: "button", text: t("Regenerate"), disabled: busy,
                                        onclick: function () { self.regenerate(m); }}));
    }
    if (m.content && m.status !== "sending" && navigator.clipboard && window.isSecureContext) {
      var copy = el("button", {type: "button", text: t("Copy")});
      copy.addEventListener("click", function () {
        navigator.clipboard.writeText(m.content).then(function () {
          copy.textContent = t("Copied");
          setTimeout(function () { copy.textContent = t("Copy"); }, 1500);
        });
      });
      actions.appendChild(copy);
    }
    return actions;
  };

  ChatView.prototype.refreshActions = function () {
    var self = this;
    this.messages.forEach(function (m) {
      var node = self.nodes[m.id];
      if (!node) return;
      var old = node.querySelector(".msg-actions");
      if (old) node.replaceChild(self.renderActions(m), old);
    });
  };

  // --- runs and streaming -------------------------------------------------------------------

  ChatView.prototype.ensureRun = function (runId) {
    if (!this.runs[runId]) {
      this.runs[runId] = {id: runId, lastSeq: 0, text: "", tools: {}, toolOrder: [],
                          assistantId: null, finished: false, frame: 0};
    }
    return this.runs[runId];
  };

  ChatView.prototype.runToolList = function (run) {
    return run.toolOrder.map(function (id) { return run.tools[id]; });
  };

  ChatView.prototype.setActive = function (runId) {
    this.activeRunId = runId;
    var busy = !!runId || !!this.pending;
    if (this.stopButton) {
      this.stopButton.hidden = !runId;
      this.stopButton.disabled = false;
    }
    if (this.sendButton) this.sendButton.hidden = !!runId;
    if (this.sendButton) this.sendButton.disabled = busy;
    this.root.classList.toggle("is-running", !!runId);
    this.refreshActions();
  };

  // The node an answer streams into: known by id, the pending placeholder, or a new one.
  ChatView.prototype.assistantNode = function (run) {
    if (run.assistantId && this.nodes[run.assistantId]) return this.nodes[run.assistantId];
    if (this.pending && this.pending.assistantNode && !this.pending.assistantNode.getAttribute("data-id")) {
      var node = this.pending.assistantNode;
      if (run.assistantId) this.adoptPlaceholder(node, run.assistantId, run.id);
      return node;
    }
    var m = {id: run.assistantId || ("run-" + run.id), role: "assistant", status: "sending", content: "",
             metadata: {}, runId: run.id, type: "text"};
    this.messages.push(m);
    var created = this.renderMessage(m);
    this.nodes[m.id] = created;
    this.list.appendChild(created);
    this.updateEmpty();
    return created;
  };

  ChatView.prototype.adoptPlaceholder = function (node, assistantId, runId) {
    node.setAttribute("data-id", assistantId);
    this.nodes[assistantId] = node;
    var m = this.pending && this.pending.assistantMessage;
    if (m) {
      m.id = assistantId;
      m.runId = runId;
    }
  };

  ChatView.prototype.scheduleRender = function (run) {
    var self = this;
    if (run.frame) return;
    run.frame = window.requestAnimationFrame(function () {
      run.frame = 0;
      self.renderRun(run);
    });
  };

  ChatView.prototype.renderRun = function (run) {
    var stick = this.nearBottom();
    var node = this.assistantNode(run);
    var body = node.querySelector("[data-body]");
    body.textContent = "";
    if (run.text) body.appendChild(renderStreamingMarkdown(run.text));
    else body.appendChild(this.typing());
    var tools = node.querySelector("[data-tools]");
    if (tools) {
      var open = {};
      tools.querySelectorAll("details[open]").forEach(function (d) {
        open[d.getAttribute("data-tool-call")] = true;
      });
      tools.textContent = "";
      this.runToolList(run).forEach(function (call) {
        var d = this.renderToolCall(call);
        if (open[call.id]) d.open = true;
        tools.appendChild(d);
      }, this);
      tools.hidden = !run.toolOrder.length;
    }
    if (stick) this.scrollToBottom();
  };

  ChatView.prototype.handle = function (event) {
    var type = event.type;
    if (type === "CONNECTED") return this.onConnected(event);
    if (type === "MESSAGE_ACCEPTED") return this.onAccepted(event);
    if (type === "ERROR") return this.onError(event);
    if (type === "PONG" || type === "STOP_ACCEPTED" || type === "RESUMED") return;
    var runId = event.runId || event.run_id;
    if (!runId) return;
    var run = this.ensureRun(runId);
    if (typeof event.seq === "number") {
      if (event.seq <= run.lastSeq) return; // already seen (replay after a reconnect)
      run.lastSeq = event.seq;
    }
    switch (type) {
      case "RUN_STARTED":
        if (!run.finished) this.setActive(runId);
        if (!this.pending && !run.assistantId && !this.knowsRun(runId)) this.scheduleReload(150);
        break;
      case "TEXT_MESSAGE_START":
        if (event.messageId && !run.assistantId) run.assistantId = String(event.messageId);
        this.assistantNode(run);
        break;
      case "TEXT_MESSAGE_CONTENT":
        if (event.messageId && !run.assistantId) run.assistantId = String(event.messageId);
        run.text += event.delta || "";
        this.scheduleRender(run);
        break;
      case "TOOL_CALL_START":
        if (event.parentMessageId && !run.assistantId) run.assistantId = String(event.parentMessageId);
        if (!run.tools[event.toolCallId]) run.toolOrder.push(event.toolCallId);
        run.tools[event.toolCallId] = {id: event.toolCallId, name: event.toolCallName, input: "",
                                       status: "pending", startedAt: Date.now()};
        this.scheduleRender(run);
        break;
      case "TOOL_CALL_ARGS":
        if (run.tools[event.toolCallId]) run.tools[event.toolCallId].input += event.delta || "";
        this.scheduleRender(run);
        break;
      case "TOOL_CALL_END":
        if (run.tools[event.toolCallId]) run.tools[event.toolCallId].status = "running";
        this.scheduleRender(run);
        break;
      case "TOOL_CALL_RESULT":
        var call = run.tools[event.toolCallId];
        if (call) {
          call.output = event.content;
          call.status = "completed";
          call.duration_ms = Date.now() - call.startedAt;
        }
        this.scheduleRender(run);
        break;
      case "RUN_FINISHED":
        this.finishRun(run, event);
        break;
      case "RUN_ERROR":
        this.finishRun(run, event);
        break;
      case "CUSTOM":
        if (event.name === "run_retry") this.setStatus(t("The model is busy; retrying…"), false);
        break;
      default:
        break;
    }
  };

  // The server lists the runs of this chat still under way: follow each from the last
  // event we have (0 after a page load: the whole run is replayed from storage).
  ChatView.prototype.onConnected = function (event) {
    var self = this;
    this.ready = true;
    var active = event.active_runs || [];
    var ids = {};
    active.forEach(function (item) {
      var run = self.ensureRun(item.run_id);
      ids[item.run_id] = true;
      if (item.assistant_message_id) run.assistantId = String(item.assistant_message_id);
      if (!run.finished) {
        self.setActive(item.run_id);
        self.resume(run);
      }
    });
    var missed = this.activeRunId && !ids[this.activeRunId];
    if (missed) {
      // It ended while we were away: the stored answer is the whole story.
      this.runs[this.activeRunId].finished = true;
      this.setActive(null);
    }
    if (this.reconnected || missed || (active.length && !this.knowsRun(active[0].run_id))) this.reload();
    this.reconnected = false;
    this.flushOutbox();
  };

  ChatView.prototype.knowsRun = function (runId) {
    return this.messages.some(function (m) { return m.runId === runId; });
  };

  ChatView.prototype.finishRun = function (run, event) {
    run.finished = true;
    if (this.pending) this.pending = null;
    if (this.activeRunId === run.id) this.setActive(null);
    if (event.type === "RUN_ERROR") {
      var node = run.assistantId ? this.nodes[run.assistantId] : null;
      if (node) {
        node.classList.remove("msg-streaming");
        node.classList.add("msg-error");
        node.querySelector(".msg-bubble").appendChild(
          el("p", {className: "msg-error-text", role: "alert", text: event.message || t("The answer failed.")}));
      } else {
        this.showError(event.message || t("The answer failed."));
      }
    }
    this.clearStatus();
    // The stored message (server-rendered Markdown, tool calls, branches) replaces the stream.
    this.reload();
  };

  ChatView.prototype.scheduleReload = function (delay) {
    var self = this;
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(function () { self.reload(); }, delay);
  };

  ChatView.prototype.onAccepted = function (event) {
    var runId = event.run_id || event.runId;
    var run = this.ensureRun(runId);
    run.assistantId = event.assistant_message_id ? String(event.assistant_message_id) : run.assistantId;
    var pending = this.pending;
    if (pending) {
      if (pending.userNode && event.user_message_id) {
        pending.userNode.setAttribute("data-id", event.user_message_id);
        pending.userNode.classList.remove("msg-pending");
        pending.userMessage.id = String(event.user_message_id);
        this.nodes[pending.userMessage.id] = pending.userNode;
      }
      if (pending.assistantNode && run.assistantId) {
        var existing = this.nodes[run.assistantId];
        if (existing && existing !== pending.assistantNode) {
          // The stream got there first and made its own node: keep that one.
          pending.assistantNode.remove();
        } else {
          this.adoptPlaceholder(pending.assistantNode, run.assistantId, runId);
        }
      }
      pending.accepted = true;
    }
    if (!run.finished) this.setActive(runId);
    if (event.title) this.showTitle(event.title);
  };

  // The first message names the chat: show it in the header and in the chat list.
  ChatView.prototype.showTitle = function (title) {
    var heading = this.root.querySelector("[data-chat-title]");
    if (heading) heading.textContent = title;
    var item = document.querySelector('[data-chat-item][data-id="' + this.chatId + '"] .chat-link-title');
    if (item) item.textContent = title;
  };

  ChatView.prototype.onError = function (event) {
    var pending = this.pending;
    if (pending && !pending.accepted && event.id === pending.ref) {
      // The message was refused: take it back out of the thread, give the text back.
      if (pending.userNode) pending.userNode.remove();
      if (pending.assistantNode) pending.assistantNode.remove();
      if (pending.removed) this.restore(pending.removed);
      if (pending.text && this.input && !this.input.value) {
        this.input.value = pending.text;
        this.autosize();
      }
      this.pending = null;
      this.setActive(this.activeRunId);
    }
    this.showError(event.message || t("Something went wrong."), event.code);
  };

  ChatView.prototype.showError = function (message, code) {
    var stick = this.nearBottom();
    var node = el("li", {className: "msg msg-assistant msg-error msg-system-error", role: "alert"}, [
      el("div", {className: "msg-bubble msg-error-box"}, [
        el("p", {className: "msg-error-text", text: message + (code ? " (" + code + ")" : "")}),
      ]),
    ]);
    this.list.appendChild(node);
    this.updateEmpty();
    if (stick) this.scrollToBottom();
  };

  // --- sending, stopping, regenerating, editing ---------------------------------------------

  // Frames written while the socket is (re)connecting wait in the outbox and go out as
  // soon as the server says CONNECTED.
  ChatView.prototype.canSend = function () {
    return !this.activeRunId && !this.pending;
  };

  ChatView.prototype.lastMessageId = function () {
    for (var i = this.messages.length - 1; i >= 0; i -= 1) {
      if (this.messages[i].id && this.messages[i].id.indexOf("run-") !== 0) return this.messages[i].id;
    }
    return null;
  };

  ChatView.prototype.addPending = function (text, removed) {
    this.counter = (this.counter || 0) + 1;
    // `ref` comes back as `id` on the answer to the frame (MESSAGE_ACCEPTED or ERROR).
    var pending = {text: text, removed: removed || null, accepted: false, ref: "turn-" + this.counter};
    if (text !== null) {
      pending.userMessage = {id: "", role: "user", content: text, status: "sending", metadata: {}, type: "text"};
      pending.userNode = this.renderMessage(pending.userMessage);
      pending.userNode.classList.add("msg-pending");
      pending.userNode.removeAttribute("data-id");
      this.messages.push(pending.userMessage);
      this.list.appendChild(pending.userNode);
    }
    pending.assistantMessage = {id: "", role: "assistant", status: "sending", content: "", metadata: {}, type: "text"};
    pending.assistantNode = this.renderMessage(pending.assistantMessage);
    pending.assistantNode.removeAttribute("data-id");
    this.messages.push(pending.assistantMessage);
    this.list.appendChild(pending.assistantNode);
    this.pending = pending;
    this.setActive(this.activeRunId);
    this.updateEmpty();
    this.scrollToBottom();
    return pending;
  };

  ChatView.prototype.send = function (frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.ready) {
      this.ws.send(JSON.stringify(frame));
    } else {
      this.outbox.push(frame);
    }
  };

  ChatView.prototype.flushOutbox = function () {
    var frames = this.outbox;
    this.outbox = [];
    frames.forEach(this.send, this);
  };

  ChatView.prototype.submit = function () {
    var text = this.input.value.trim();
    if (!text || !this.canSend()) return;
    var parentId = this.lastMessageId();
    this.input.value = "";
    this.autosize();
    var pending = this.addPending(text);
    var frame = {type: "send_message", content: text, id: pending.ref};
    if (parentId) frame.parent_id = parentId;
    this.send(frame);
  };

  ChatView.prototype.stop = function () {
    var runId = this.activeRunId;
    if (!runId) return;
    this.stopButton.disabled = true;
    if (this.ready) {
      this.send({type: "stop", run_id: runId});
    } else {
      var self = this;
      api("POST", "/api/v1/runs/" + encodeURIComponent(runId) + "/stop", {}).catch(function (error) {
        self.stopButton.disabled = false;
        self.showError(error.message);
      });
    }
  };

  // Take the messages from `index` on out of the thread (kept to restore on a refusal).
  ChatView.prototype.cutFrom = function (index) {
    var removed = this.messages.splice(index);
    removed.forEach(function (m) {
      var node = this.nodes[m.id];
      if (node) node.remove();
    }, this);
    return removed;
  };

  ChatView.prototype.restore = function (removed) {
    removed.forEach(function (m) {
      this.messages.push(m);
      var node = this.renderMessage(m);
      this.nodes[m.id] = node;
      this.list.appendChild(node);
    }, this);
  };

  ChatView.prototype.indexOf = function (id) {
    for (var i = 0; i < this.messages.length; i += 1) if (this.messages[i].id === id) return i;
    return -1;
  };

  ChatView.prototype.regenerate = function (m) {
    if (!this.canSend()) return;
    var removed = this.cutFrom(this.indexOf(m.id));
    var pending = this.addPending(null, removed);
    this.send({type: "regenerate", message_id: m.id, id: pending.ref});
  };

  ChatView.prototype.startEdit = function (m) {
    var self = this;
    var node = this.nodes[m.id];
    if (!node || node.querySelector(".msg-edit")) return;
    var bubble = node.querySelector(".msg-bubble");
    var textarea = el("textarea", {"aria-label": t("Edit message"), rows: "3"});
    textarea.value = m.content;
    var editor = el("form", {className: "msg-edit"}, [
      textarea,
      el("div", {className: "form-actions"}, [
        el("button", {type: "button", className: "button secondary small", text: t("Cancel"),
                      onclick: function () { editor.remove(); bubble.hidden = false; }}),
        el("button", {type: "submit", className: "button small", text: t("Save and send")}),
      ]),
    ]);
    editor.addEventListener("submit", function (e) {
      e.preventDefault();
      var text = textarea.value.trim();
      if (!text || !self.canSend()) return;
      var removed = self.cutFrom(self.indexOf(m.id));
      var pending = self.addPending(text, removed);
      self.send({type: "edit_message", message_id: m.id, content: text, id: pending.ref});
    });
    textarea.addEventListener("keydown", function (e) {
      if (e.key === "Escape") { editor.remove(); bubble.hidden = false; }
    });
    bubble.hidden = true;
    bubble.parentNode.insertBefore(editor, bubble.nextSibling);
    textarea.focus();
  };

  ChatView.prototype.switchBranch = function (messageId) {
    var self = this;
    if (!messageId) return;
    api("POST", this.apiBase + "/branch", {message_id: messageId}).then(function () {
      return self.reload();
    }, function (error) {
      self.showError(error.message);
    });
  };

  // --- the socket ---------------------------------------------------------------------------

  ChatView.prototype.connect = function () {
    var self = this;
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var ws;
    try {
      ws = new WebSocket(scheme + window.location.host + this.wsPath);
    } catch (e) {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.addEventListener("open", function () {
      self.reconnected = self.attempt > 0;
      self.attempt = 0;
      self.clearStatus();
    });
    ws.addEventListener("message", function (e) {
      var event;
      try {
        event = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      if (Array.isArray(event)) event.forEach(self.handle, self);
      else self.handle(event);
    });
    ws.addEventListener("close", function (e) {
      if (self.ws !== ws) return;
      self.ws = null;
      self.ready = false;
      if (self.closedByUs) return;
      if (e.code === 4401 || e.code === 4403 || e.code === 4404) {
        self.setStatus(t("This chat is not available."), true);
        return;
      }
      self.retry();
    });
  };

  ChatView.prototype.resume = function (run) {
    this.send({type: "resume", run_id: run.id, last_seq: run.lastSeq});
  };

  // Exponential backoff with jitter: 0.5 s, 1 s, 2 s … up to 15 s.
  ChatView.prototype.retry = function () {
    var self = this;
    var delay = Math.min(15000, 500 * Math.pow(2, this.attempt)) * (0.8 + Math.random() * 0.4);
    this.attempt += 1;
    this.setStatus(t("Reconnecting…"), false);
    setTimeout(function () { self.connect(); }, delay);
  };

  ChatView.prototype.setStatus = function (text, isError) {
    if (!this.status) return;
    this.status.textContent = text;
    this.status.classList.toggle("error", !!isError);
    this.status.hidden = false;
    this.root.classList.add("is-reconnecting");
  };

  ChatView.prototype.clearStatus = function () {
    if (!this.status) return;
    this.status.hidden = true;
    this.status.textContent = "";
    this.root.classList.remove("is-reconnecting");
  };

  // --- the sidebar (chat page only) ---------------------------------------------------------

  function Sidebar(root) {
    var app = root.closest("[data-chat-app]");
    this.root = root;
    this.app = app;
    this.bindSearch();
    this.bindItems();
    this.bindDrawer();
  }

  Sidebar.prototype.bindSearch = function () {
    var input = this.root.querySelector("[data-chat-search]");
    if (!input) return;
    var items = this.root.querySelectorAll("[data-chat-item]");
    var none = this.root.querySelector("[data-no-match]");
    input.addEventListener("input", function () {
      var q = input.value.trim().toLowerCase();
      var shown = 0;
      items.forEach(function (item) {
        var match = !q || (item.getAttribute("data-search") || "").toLowerCase().indexOf(q) !== -1;
        item.hidden = !match;
        if (match) shown += 1;
      });
      if (none) none.hidden = shown > 0 || !items.length;
    });
  };

  Sidebar.prototype.bindItems = function () {
    this.root.querySelectorAll("[data-chat-item]").forEach(function (item) {
      var url = item.getAttribute("data-api");
      var menu = item.querySelector("details");
      function closeMenu() { if (menu) menu.open = false; }
      item.querySelectorAll("[data-action]").forEach(function (button) {
        button.addEventListener("click", function () {
          var action = button.getAttribute("data-action");
          closeMenu();
          if (action === "rename") return renameItem(item, url);
          if (action === "archive" || action === "unarchive") {
            return api("PATCH", url, {status: action === "archive" ? "archived" : "active"})
              .then(function () { removeItem(item); }, alertError);
          }
          if (action === "delete") {
            if (!window.confirm(t("Delete this chat? This cannot be undone."))) return;
            return api("DELETE", url).then(function () { removeItem(item); }, alertError);
          }
        });
      });
    });
  };

  function alertError(error) {
    window.alert(error.message);
  }

  function removeItem(item) {
    if (item.getAttribute("aria-current") === "true") {
      window.location.href = item.getAttribute("data-after-remove") || "/chats/";
      return;
    }
    item.remove();
  }

  function renameItem(item, url) {
    var titleNode = item.querySelector(".chat-link-title");
    var link = item.querySelector(".chat-link");
    var input = el("input", {type: "text", maxlength: "200", "aria-label": t("Chat title")});
    input.value = titleNode.textContent.trim();
    var form = el("form", {className: "chat-rename"}, [
      input,
      el("button", {type: "submit", className: "button small", text: t("Save")}),
    ]);
    link.hidden = true;
    item.insertBefore(form, link);
    input.focus();
    input.select();
    function done() {
      form.remove();
      link.hidden = false;
    }
    input.addEventListener("keydown", function (e) {
      if (e.key === "Escape") done();
    });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var title = input.value.trim();
      if (!title) return done();
      api("PATCH", url, {title: title}).then(function (data) {
        titleNode.textContent = (data && data.title) || title;
        item.setAttribute("data-search", (item.getAttribute("data-search") || "") + " " + title);
        if (item.getAttribute("aria-current") === "true") {
          var heading = document.querySelector("[data-chat-title]");
          if (heading) heading.textContent = titleNode.textContent;
        }
        done();
      }, function (error) {
        window.alert(error.message);
      });
    });
  }

  Sidebar.prototype.bindDrawer = function () {
    var app = this.app;
    if (!app) return;
    function setOpen(open) {
      app.classList.toggle("sidebar-open", open);
      document.querySelectorAll("[data-sidebar-toggle]").forEach(function (b) {
        b.setAttribute("aria-expanded", open ? "true" : "false");
      });
    }
    document.querySelectorAll("[data-sidebar-toggle]").forEach(function (button) {
      button.addEventListener("click", function () {
        setOpen(!app.classList.contains("sidebar-open"));
      });
    });
    var close = this.root.querySelector("[data-sidebar-close]");
    if (close) close.addEventListener("click", function () { setOpen(false); });
    app.addEventListener("click", function (e) {
      if (app.classList.contains("sidebar-open") && e.target === app) setOpen(false);
    });
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && app.classList.contains("sidebar-open")) setOpen(false);
    });
  };

  // --- start --------------------------------------------------------------------------------

  window.AgentStore = window.AgentStore || {};
  window.AgentStore.renderStreamingMarkdown = renderStreamingMarkdown;
  window.AgentStore.chats = [];
  // Small <details> menus close on a click elsewhere, and after a choice.
  document.addEventListener("click", function (e) {
    document.querySelectorAll(".chat-item-menu[open], .new-chat[open], .export-menu[open]").forEach(function (d) {
      if (!d.contains(e.target) || (e.target.closest && e.target.closest(".menu-pop a"))) d.open = false;
    });
  });
  document.querySelectorAll("[data-chat-sidebar]").forEach(function (node) { new Sidebar(node); });
  document.querySelectorAll("[data-chat]").forEach(function (node) {
    window.AgentStore.chats.push(new ChatView(node));
  });
})();
