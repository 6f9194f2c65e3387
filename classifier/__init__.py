"""The "used as a reference by Wikipedia" quality classifier (fastText): building its training set from a
Wikipedia dump and a crawl, training, evaluation and scoring. Plugs into the CC job's quality slot."""
