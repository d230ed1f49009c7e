import { describe, expect, test } from "bun:test";
import { ConfirmTracker } from "../../src/rpc/confirms.ts";

/** Publishes `count` requests named r1, r2, … and returns the tracker. */
function tracker(count: number): ConfirmTracker<string> {
  const t = new ConfirmTracker<string>();
  for (let i = 1; i <= count; i++) t.published(`r${i}`);
  return t;
}

describe("publisher confirms: which requests a basic.ack / basic.nack is about", () => {
  const cases: {
    name: string;
    published: number;
    confirms: [tag: number, multiple: boolean][];
    expected: string[][];
    outstanding: number;
  }[] = [
    {
      name: "one at a time, in order",
      published: 3,
      confirms: [
        [1, false],
        [2, false],
        [3, false],
      ],
      expected: [["r1"], ["r2"], ["r3"]],
      outstanding: 0,
    },
    {
      name: "multiple: everything up to the tag",
      published: 5,
      confirms: [
        [3, true],
        [5, true],
      ],
      expected: [
        ["r1", "r2", "r3"],
        ["r4", "r5"],
      ],
      outstanding: 0,
    },
    {
      name: "out of order, then multiple skips what was confirmed alone",
      published: 5,
      confirms: [
        [4, false],
        [5, true],
      ],
      expected: [["r4"], ["r1", "r2", "r3", "r5"]],
      outstanding: 0,
    },
    {
      name: "a confirm repeated or for an unknown tag confirms nothing",
      published: 2,
      confirms: [
        [1, false],
        [1, false],
        [9, false],
      ],
      expected: [["r1"], [], []],
      outstanding: 1,
    },
    {
      name: "multiple below what is outstanding leaves the rest",
      published: 4,
      confirms: [[2, true]],
      expected: [["r1", "r2"]],
      outstanding: 2,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const t = tracker(c.published);
      expect(c.confirms.map(([tag, multiple]) => t.confirm(tag, multiple))).toEqual(c.expected);
      expect(t.outstanding).toBe(c.outstanding);
    });
  }

  test("tags keep counting across confirms: a request published later gets the next tag", () => {
    const t = tracker(2);
    expect(t.confirm(2, true)).toEqual(["r1", "r2"]);
    t.published("r3");
    expect(t.confirm(3, false)).toEqual(["r3"]);
  });

  test("after a long run of single confirms, a multiple one confirms only what is left", () => {
    const t = tracker(100_000);
    for (let tag = 1; tag <= 99_999; tag++) t.confirm(tag, false);
    expect(t.confirm(100_000, true)).toEqual(["r100000"]);
  });
});
