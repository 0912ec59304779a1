// A third-party reward function, written against @tunekit/kernel alone: the share of the reference answer's words
// that the completion has in the same place (the quickstart README's "words in place"), over the longer of the two,
// so extra words cost too. A config loads it with `plugins: [path/to/reward-plugin]` and selects it with
// `reward_funcs: [echo_words]`.
const { contribute, REWARD_FUNCTION } = require('@tunekit/kernel');

function wordsInPlace(completion, solution) {
  const got = completion.trim().split(/\s+/).filter(Boolean);
  const want = solution.trim().split(/\s+/).filter(Boolean);
  const longer = Math.max(got.length, want.length);
  if (longer === 0) return 1;
  let same = 0;
  for (let i = 0; i < Math.min(got.length, want.length); i++) if (got[i] === want[i]) same++;
  return same / longer;
}

module.exports = {
  name: 'tunekit-reward-echo-words',
  options: [],
  wordsInPlace,
  register(container) {
    contribute(container, REWARD_FUNCTION, {
      id: 'echo_words',
      description: "the share of the reference answer's words in place",
      provider: {
        useFactory: () => ({
          score: ({ completions, solutions }) => completions.map((c, i) => (solutions[i] === undefined ? NaN : wordsInPlace(c, solutions[i]))),
        }),
      },
    });
  },
};
