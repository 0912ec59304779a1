import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { UnsupervisedExample } from '@tunekit/data';
import type { TokenizerLike } from '@tunekit/kernel';
import { RolloutRows } from '../src/batches';
import { rewardInput, scoreRewards } from '../src/grpo';
import { ApiRewardModel } from '../src/reward-model';

/** A tokenizer whose ids are char codes; 2 is eos (decoded as "</s>", dropped when special tokens are skipped). */
const tokenizer = {
  decode: (ids: readonly number[], options?: { skipSpecialTokens?: boolean }) => ids.map((id) => (id === 2 ? (options?.skipSpecialTokens ? '' : '</s>') : String.fromCharCode(id))).join(''),
} as unknown as TokenizerLike;
const codes = (text: string) => Array.from(text, (c) => c.charCodeAt(0));
const example = (prompt: string, answer: string): UnsupervisedExample => ({ input_ids: Int32Array.from(codes(prompt)), labels: Int32Array.from([...codes(answer), 2]) });

describe('what reward functions read', () => {
  it('decodes completions without their ending eos, the prompts, and the reference answers of the prompts', () => {
    const input = rewardInput(
      [
        { promptIds: codes('say ab'), tokenIds: [...codes('ab'), 2], logps: [0, 0, 0], finishReason: 'stop' },
        { promptIds: codes('say ab'), tokenIds: codes('abc'), logps: [0, 0, 0], finishReason: 'length' },
      ],
      [example('say ab', 'ab'), { input_ids: Int32Array.from(codes('say ab')), labels: new Int32Array(0) }],
      tokenizer,
      [2],
    );
    expect(input.completions).toEqual(['ab', 'abc']);
    expect(input.prompts).toEqual(['say ab', 'say ab']);
    expect(input.solutions).toEqual(['ab', undefined]);
    expect(input.completionIds.map((ids) => ids.length)).toEqual([3, 3]);
  });

  it('sums weighted rewards with NaN as 0 (TRL nansum); logs each function over the completions it scored', async () => {
    const input = { completions: ['a', 'b', 'c'], prompts: ['', '', ''], solutions: [undefined, undefined, undefined], completionIds: [[], [], []] };
    const { total, metrics } = await scoreRewards(
      [
        { id: 'first', weight: 2, fn: { score: () => [1, 0, NaN] } },
        { id: 'second', weight: -1, fn: { score: async () => [0.5, 0.5, 0.5] } },
      ],
      input,
    );
    expect(total).toEqual([1.5, -0.5, -0.5]);
    expect(metrics['rewards/first/mean']).toBe(0.5);
    expect(metrics['rewards/first/std']).toBeCloseTo(Math.SQRT1_2, 12);
    expect(metrics['rewards/second/mean']).toBe(0.5);
    await expect(scoreRewards([{ id: 'short', weight: 1, fn: { score: () => [1] } }], input)).rejects.toThrow("The reward function 'short' returned 1 scores for 3 completions; it must return one per completion.");
  });
});

describe("the api reward model (LLaMA-Factory's reward_model_type: api)", () => {
  let server: http.Server;
  let url: string;
  let answer: (body: { model: string; messages: string[] }, res: http.ServerResponse) => void;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let text = '';
      req.on('data', (chunk) => (text += chunk));
      req.on('end', () => answer(JSON.parse(text), res));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/score`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const rows = RolloutRows.of([{ promptIds: [1], tokenIds: [2], logps: [0], finishReason: 'stop' }], 0);

  it('posts the texts as messages and reads {"scores": [...]}', async () => {
    answer = (body, res) => res.end(JSON.stringify({ scores: body.messages.map((m) => m.length) }));
    expect(await new ApiRewardModel(url, 5).score(rows, ['abc', 'de'])).toEqual([3, 2]);
  });

  it('names the key and the endpoint when the answer is wrong, an HTTP error, or late', async () => {
    answer = (_body, res) => res.end(JSON.stringify({ scores: [1] }));
    await expect(new ApiRewardModel(url, 5).score(rows, ['a', 'b'])).rejects.toThrow(`reward_model: the reward API at ${url} must answer {"scores": [...]} with 2 finite numbers`);
    answer = (_body, res) => {
      res.statusCode = 500;
      res.end('boom');
    };
    await expect(new ApiRewardModel(url, 5).score(rows, ['a'])).rejects.toThrow(`reward_model: the reward API at ${url} answered HTTP 500: boom`);
    answer = (_body, res) => setTimeout(() => res.end(JSON.stringify({ scores: [1] })), 500);
    await expect(new ApiRewardModel(url, 0.1).score(rows, ['a'])).rejects.toThrow('did not answer within 0.1 s. Check the server, or raise reward_api_timeout.');
  });
});
