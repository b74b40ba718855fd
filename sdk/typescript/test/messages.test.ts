/**
 * Stream mode "messages" in the TypeScript SDK (issue 19, part 4): chat models
 * of @langchain/core called inside tasks and entrypoints stream their tokens
 * with no change to the code, `writeMessageChunk` streams for any other LLM
 * client, and the client yields langgraphjs's `[messageChunk, metadata]`
 * pairs, also after reconnecting from an event id. A real `cairn serve` and
 * an in-process worker.
 */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { AIMessage, AIMessageChunk, ToolMessage } from "@langchain/core/messages";
import { BaseChatModel } from "@langchain/core/language_models/chat_models";
import type { BaseMessage } from "@langchain/core/messages";
import type { ChatResult } from "@langchain/core/outputs";
import { FakeStreamingChatModel } from "@langchain/core/utils/testing";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import {
  Annotation,
  END,
  START,
  StateGraph,
  entrypoint,
  getWriter,
  task,
  writeMessageChunk,
  type RunEvent,
} from "../src/index.js";
import { messagePair } from "../src/messages.js";
import { serveFunctions, type Served } from "./served.js";

const FIRST = "hello there";
const SECOND = "bye now";

/** Streams `text` one character at a time, without pauses. */
const model = (text: string) => new FakeStreamingChatModel({ sleep: 0, responses: [new AIMessage(text)] });

const reply = task("reply", async (topic: string) => {
  const message = await model(SECOND).invoke(`reply to ${topic}`, { tags: ["reply"] });
  return message.content as string;
});

/** Resolved by the reconnect test: `chat` waits for it between its replies. */
let openGate: () => void = () => undefined;
let gate: Promise<void> | undefined;

const chat = entrypoint({ name: "chat" }, async (request: { topic: string; gate?: boolean }) => {
  const first = await model(FIRST).invoke(request.topic);
  if (request.gate) await gate;
  const second = await reply(request.topic);
  return `${first.content}|${second}`;
});

/** A chat model that only answers whole (no `_streamResponseChunks`): it echoes. */
class WholeReplyModel extends BaseChatModel {
  _llmType(): string {
    return "whole-reply";
  }

  async _generate(messages: BaseMessage[]): Promise<ChatResult> {
    const text = String(messages.at(-1)?.content ?? "");
    return { generations: [{ text, message: new AIMessage({ content: text, id: "m-1" }) }] };
  }
}

const whole = entrypoint({ name: "whole" }, async (text: string) => {
  const hidden = await model("secret").invoke(text, { tags: ["nostream"] });
  const answer = await new WholeReplyModel({}).invoke(text);
  return `${hidden.content}/${answer.content}`;
});

const byHand = entrypoint({ name: "byHand" }, async (_question: string) => {
  getWriter()({ status: "asking" });
  for (const token of ["Hel", "lo"]) {
    writeMessageChunk(token, { id: "reply-1", metadata: { ls_provider: "acme" } });
  }
  writeMessageChunk({ content: "!", id: "reply-1" });
  writeMessageChunk(new ToolMessage({ content: "42", tool_call_id: "call-1", id: "tool-1" }));
  getWriter()({ status: "done" });
  return "Hello!";
});

const Talk = Annotation.Root({ topic: Annotation<string>, answer: Annotation<string> });

/** A graph whose node calls a chat model: its tokens carry the node's name. */
const talk = new StateGraph(Talk)
  .addNode("speak", async (state: typeof Talk.State) => {
    const message = await model(FIRST).invoke(state.topic);
    return { answer: message.content as string };
  })
  .addEdge(START, "speak")
  .addEdge("speak", END)
  .compile({ name: "talk" });

type Pair = [AIMessageChunk, Record<string, JsonValue>];

const pairs = (events: RunEvent[]) =>
  events.filter((e) => e.mode === "messages").map((e) => e.data as unknown as Pair);

async function collect(events: AsyncIterable<RunEvent>): Promise<RunEvent[]> {
  const all: RunEvent[] = [];
  for await (const event of events) all.push(event);
  return all;
}

describe("stream mode messages", () => {
  let served: Served;
  before(async () => {
    served = await serveFunctions([reply, chat, whole, byHand, talk]);
  });
  after(async () => {
    await served?.stop();
  });

  test("every token of an entrypoint and its task arrives in order, with metadata", async () => {
    const events = await collect(
      served.client.stream(chat, { topic: "cats" }, { threadId: "m1", streamMode: "messages" }),
    );
    const end = events.at(-1)?.run;
    assert.equal(end?.state, "succeeded");
    assert.equal(end?.output, `${FIRST}|${SECOND}`);
    const got = pairs(events);
    assert.deepEqual(
      got.map(([chunk]) => chunk.content),
      [...FIRST, ...SECOND],
    );
    assert.ok(got.every(([chunk]) => chunk instanceof AIMessageChunk));
    const first = got.slice(0, FIRST.length);
    const second = got.slice(FIRST.length);
    assert.equal(new Set(first.map(([c]) => c.id)).size, 1);
    assert.equal(new Set(second.map(([c]) => c.id)).size, 1);
    assert.notEqual(first[0][0].id, second[0][0].id);
    for (const [, metadata] of first) {
      assert.equal(metadata.langgraph_node, "chat");
      assert.equal(metadata.langgraph_step, 0);
      assert.deepEqual(metadata.langgraph_triggers, ["__start__"]);
      assert.deepEqual(metadata.langgraph_path, ["__pregel_pull", "chat"]);
      assert.deepEqual(metadata.tags, []);
      assert.equal(metadata.thread_id, "m1");
      assert.equal(metadata.run_id, events[0].runId);
      assert.equal(metadata.ls_provider, "FakeStreamingChatModel");
      assert.match(String(metadata.langgraph_checkpoint_ns), /^chat:/);
    }
    for (const [, metadata] of second) {
      assert.equal(metadata.langgraph_node, "reply");
      assert.equal(metadata.langgraph_step, 0);
      assert.deepEqual(metadata.langgraph_triggers, ["__pregel_push"]);
      assert.deepEqual(metadata.tags, ["reply"]);
    }
  });

  test("a graph node's tokens carry the node's name, step and path", async () => {
    const events = await collect(
      served.client.stream(talk, { topic: "dogs" }, { threadId: "m-graph", streamMode: "messages" }),
    );
    assert.equal(events.at(-1)?.run?.state, "succeeded");
    const got = pairs(events);
    assert.deepEqual(
      got.map(([chunk]) => chunk.content),
      [...FIRST],
    );
    for (const [, metadata] of got) {
      assert.equal(metadata.langgraph_node, "speak");
      assert.equal(metadata.langgraph_step, 1);
      assert.deepEqual(metadata.langgraph_path, ["__pregel_pull", "speak"]);
      assert.match(String(metadata.langgraph_checkpoint_ns), /^speak:/);
    }
  });

  test("a client that reconnects mid-run gets exactly the tokens it missed", async () => {
    gate = new Promise((resolve) => (openGate = resolve));
    const options = { threadId: "m2", streamMode: "messages" } as const;
    const stream = served.client.stream(chat, { topic: "dogs", gate: true }, options);
    const seen: RunEvent[] = [];
    for await (const event of stream) {
      seen.push(event);
      if (pairs(seen).length === 4) break; // ends the stream: the client goes away
    }
    const last = seen.at(-1)!;
    assert.equal((await served.client.getRun(last.runId)).state, "running");
    openGate();
    const rest = await collect(served.client.join(last.runId, { afterEventId: last.eventId }));
    const everything = await collect(served.client.join(last.runId));
    assert.equal(rest.at(-1)?.run?.state, "succeeded");
    assert.equal(rest[0].eventId, last.eventId + 1);
    const got = pairs(seen).map(([c]) => c.content);
    const missed = pairs(rest).map(([c]) => c.content);
    assert.deepEqual(got, [...FIRST].slice(0, 4));
    assert.deepEqual(missed, [...[...FIRST].slice(4), ...SECOND]);
    assert.deepEqual(
      [...seen, ...rest].map((e) => e.eventId),
      everything.map((e) => e.eventId),
    );
  });

  test("with several modes, tokens come beside the task's updates", async () => {
    const events = await collect(
      served.client.stream(chat, { topic: "owls" }, { threadId: "m3", streamMode: ["messages", "updates"] }),
    );
    const modes = events.filter((e) => e.run === undefined).map((e) => e.mode);
    assert.deepEqual(modes, [
      ...Array<string>(FIRST.length + SECOND.length).fill("messages"),
      "updates",
      "updates",
    ]);
  });

  test("a model that cannot stream sends its whole message; nostream sends nothing", async () => {
    const options = { threadId: "m4", streamMode: "messages" } as const;
    const events = await collect(served.client.stream(whole, "ping", options));
    assert.equal(events.at(-1)?.run?.output, "secret/ping");
    const got = pairs(events);
    assert.equal(got.length, 1);
    const [message, metadata] = got[0] as unknown as [AIMessage, JsonObject];
    assert.ok(message instanceof AIMessage);
    assert.equal(message.content, "ping");
    assert.equal(message.id, "m-1");
    assert.equal(metadata.langgraph_node, "whole");
  });

  test("writeMessageChunk streams text, objects and messages beside custom data", async () => {
    const events = await collect(
      served.client.stream(byHand, "?", { threadId: "m5", streamMode: ["messages", "custom"] }),
    );
    const shown = events
      .filter((e) => e.run === undefined)
      .map((e) => {
        if (e.mode === "custom") return ["custom", e.data];
        const [message] = e.data as unknown as Pair;
        return ["messages", message.constructor.name, message.content];
      });
    assert.deepEqual(shown, [
      ["custom", { status: "asking" }],
      ["messages", "AIMessageChunk", "Hel"],
      ["messages", "AIMessageChunk", "lo"],
      ["messages", "AIMessageChunk", "!"],
      ["messages", "ToolMessage", "42"],
      ["custom", { status: "done" }],
    ]);
    const got = pairs(events);
    assert.deepEqual(
      got.map(([m]) => m.id),
      ["reply-1", "reply-1", "reply-1", "tool-1"],
    );
    assert.equal(got[0][1].ls_provider, "acme");
    assert.equal(got[0][1].langgraph_node, "byHand");
    assert.equal((got[3][0] as unknown as ToolMessage).tool_call_id, "call-1");
  });

  test("nothing is sent when the run did not ask for messages", async () => {
    for (const [target, input] of [
      [chat, { topic: "none" }],
      [byHand, "?"],
    ] as const) {
      const events = await collect(
        served.client.stream(target, input, {
          threadId: `m6-${target.name}`,
          streamMode: ["custom", "updates"],
        }),
      );
      assert.equal(events.at(-1)?.run?.state, "succeeded");
      assert.deepEqual(pairs(events), []);
      assert.deepEqual(pairs(await collect(served.client.join(events[0].runId))), []);
    }
  });
});

test("a chunk the Python SDK wrote reads as an AIMessageChunk", async () => {
  // As pydantic's model_dump of a langchain-core AIMessageChunk (None fields left out).
  const data: JsonObject = {
    message: {
      content: "hel",
      additional_kwargs: {},
      response_metadata: {},
      type: "AIMessageChunk",
      id: "lc_run--1",
      tool_calls: [],
      invalid_tool_calls: [],
      usage_metadata: { input_tokens: 1, output_tokens: 2, total_tokens: 3 },
      tool_call_chunks: [{ name: "f", args: "{", id: "c1", index: 0, type: "tool_call_chunk" }],
    },
    metadata: { langgraph_node: "chat", langgraph_step: 1 },
  };
  const [message, metadata] = await messagePair(data);
  assert.ok(message instanceof AIMessageChunk);
  assert.equal(message.content, "hel");
  assert.equal(message.id, "lc_run--1");
  assert.equal(message.usage_metadata?.total_tokens, 3);
  assert.equal(message.tool_call_chunks?.[0]?.name, "f");
  assert.deepEqual(metadata, { langgraph_node: "chat", langgraph_step: 1 });
});
