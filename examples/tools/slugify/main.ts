// Turn a title into a URL slug.
interface Args {
  text: string;
  separator?: string;
}

export function run(args: Args): string {
  const sep = args.separator ?? "-";
  const words = args.text
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w.length > 0);
  if (words.length === 0) {
    throw new Error("the text has no letters or digits to make a slug from");
  }
  return words.join(sep);
}
