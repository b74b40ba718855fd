/**
 * A deterministic fake embedding model for the memory tests: a text's
 * vector counts the words of a small vocabulary it contains, plus one
 * constant dimension so that no vector is zero. Texts about the same words
 * are near; the expected scores are computed here with `cosine`.
 */

import { Embeddings } from "@langchain/core/embeddings";

export const VOCABULARY = ["cat", "dog", "pizza", "pasta", "rain", "sun", "code", "tests"] as const;

/** The length of every vector. */
export const DIMS = VOCABULARY.length + 1;

export function embedText(text: string): number[] {
  const words = text.toLowerCase().split(/[^a-z]+/);
  return [...VOCABULARY.map((word) => words.filter((w) => w === word).length), 0.5];
}

/** The embedding function form (LangGraph Python's `embed`), recording each call's texts. */
export function recordingEmbed(calls: string[][]): (texts: string[]) => number[][] {
  return (texts) => {
    calls.push([...texts]);
    return texts.map(embedText);
  };
}

export function cosine(a: readonly number[], b: readonly number[]): number {
  const dot = a.reduce((sum, x, i) => sum + x * b[i], 0);
  const norm = (v: readonly number[]) => Math.sqrt(v.reduce((sum, x) => sum + x * x, 0));
  return dot / (norm(a) * norm(b));
}

/** The same model as a LangChain `Embeddings`, as langgraphjs's index config takes it. */
export class WordEmbeddings extends Embeddings {
  /** The texts of each call, in order. */
  readonly calls: string[][] = [];

  constructor() {
    super({});
  }

  async embedDocuments(texts: string[]): Promise<number[][]> {
    this.calls.push([...texts]);
    return texts.map(embedText);
  }

  async embedQuery(text: string): Promise<number[]> {
    this.calls.push([text]);
    return embedText(text);
  }
}
