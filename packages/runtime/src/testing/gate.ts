/** A signal a test opens once: handlers wait on `opened` instead of sleeping and hoping. */
export interface Gate {
  readonly opened: Promise<void>;
  readonly isOpen: boolean;
  open(): void;
}

export function gate(): Gate {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  const g = {
    opened,
    isOpen: false,
    open: () => {
      g.isOpen = true;
      open();
    },
  };
  return g;
}
