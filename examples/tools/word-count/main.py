"""Count the words, lines and characters of a text."""


def run(text: str, unique: bool = False) -> dict:
    words = text.split()
    result = {"words": len(words), "lines": len(text.splitlines()), "chars": len(text)}
    if unique:
        result["unique_words"] = len({w.lower() for w in words})
    return result
