from shared.ids import new_id


def test_ids_made_in_a_burst_keep_their_order() -> None:
    made = [new_id() for _ in range(10_000)]
    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(i.version == 7 for i in made[:100])
