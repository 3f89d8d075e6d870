from tests.conftest import render


def test_program_renders_twice_in_one_process(tmp_path, dev):
    again = render("dev", """
        tenants:
          - name: solo
            team: t
            repo: {url: https://github.com/x/y.git}
            environments: [dev]
    """, tmp_path)
    assert again.tenant_names() == ["solo"]
    assert dev.tenant_names() == ["research", "compliance", "scratch"]
