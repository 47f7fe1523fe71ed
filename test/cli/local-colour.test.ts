// `leaderd local` colours its output only on a terminal and honours NO_COLOR (no-color.org):
// a pipe or a log file must not fill with escape codes.
import { describe, expect, it } from 'vitest';
import { useColour } from '../../src/cli/local.js';

describe('useColour', () => {
  it('colours a terminal, not a pipe', () => {
    expect(useColour({ isTTY: true }, {})).toBe(true);
    expect(useColour({ isTTY: false }, {})).toBe(false);
    expect(useColour({}, {})).toBe(false);
  });
  it('NO_COLOR set to anything but the empty string turns colour off, even on a terminal', () => {
    expect(useColour({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(useColour({ isTTY: true }, { NO_COLOR: 'false' })).toBe(false);
    expect(useColour({ isTTY: true }, { NO_COLOR: '' })).toBe(true);
  });
});
