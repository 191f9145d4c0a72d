// A one-shot message carried across a navigation ("Draft saved"), shown by the next screen.
let pending: string | null = null;

export function setFlash(message: string) {
  pending = message;
}

export function takeFlash(): string | null {
  const m = pending;
  pending = null;
  return m;
}
