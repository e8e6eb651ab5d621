"""The app answers: login page in Chinese, redirects for anonymous users."""


def test_the_login_page_is_in_chinese_by_default(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert "登录" in response.get_data(as_text=True)


def test_an_anonymous_visitor_is_sent_to_the_login_page(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_a_signed_in_admin_sees_the_home_page(client, login):
    user = login("admin")
    response = client.get("/")
    assert response.status_code == 200
    assert user.name in response.get_data(as_text=True)
