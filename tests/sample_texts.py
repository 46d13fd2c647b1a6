"""Varied texts the batch tests send (kind, rude, hateful-sounding, emoji, punctuation, accents):
the labels differ between them, so a batch answered out of order would show."""

SEEDS = [
    "Have a wonderful day, see you at the game tonight!",
    "you are a stupid idiot and everyone knows it",
    "I hate all of those people, they should go back where they came from",
    "what a trash team, bunch of losers",
    "Congrats to the team on a great season",
    "🙂🙂🙂",
    "?!",
    "Café crème et croissants, très bien",
    "shut up you worthless clown",
    "lovely weather for a walk in the park",
]
