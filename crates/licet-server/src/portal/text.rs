//! The portal's words in Russian and English.

pub(crate) use licet_core::Lang;

/// From `Accept-Language`: the first of `ru`/`en` by preference; Russian when neither is
/// named (the first customers read Russian).
pub(crate) fn from_accept_language(header: &str) -> Lang {
    let mut best: Option<(f32, Lang)> = None;
    for part in header.split(',') {
        let mut pieces = part.split(';');
        let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = pieces.find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
        let lang = match tag.split('-').next() {
            Some("ru") => Lang::Ru,
            Some("en") => Lang::En,
            _ => continue,
        };
        if best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, lang));
        }
    }
    best.map_or(Lang::Ru, |(_, l)| l)
}

/// Every phrase of the portal.
pub(crate) struct Text {
    pub(crate) title: &'static str,
    pub(crate) login_heading: &'static str,
    pub(crate) login_hint: &'static str,
    pub(crate) credential: &'static str,
    pub(crate) login: &'static str,
    pub(crate) logout: &'static str,
    pub(crate) bad_credential: &'static str,
    pub(crate) rate_limited: &'static str,
    pub(crate) forged: &'static str,
    pub(crate) number: &'static str,
    pub(crate) licenses: &'static str,
    pub(crate) product: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) seats: &'static str,
    pub(crate) expires: &'static str,
    pub(crate) perpetual: &'static str,
    pub(crate) trial: &'static str,
    pub(crate) subscription: &'static str,
    pub(crate) perpetual_kind: &'static str,
    pub(crate) bindings: &'static str,
    pub(crate) no_bindings: &'static str,
    pub(crate) host: &'static str,
    pub(crate) os: &'static str,
    pub(crate) bound_since: &'static str,
    pub(crate) last_seen: &'static str,
    pub(crate) info: &'static str,
    pub(crate) reset: &'static str,
    pub(crate) confirm_heading: &'static str,
    pub(crate) confirm_text: &'static str,
    pub(crate) cancel: &'static str,
    pub(crate) was_reset: &'static str,
    pub(crate) not_found: &'static str,
    pub(crate) component: &'static str,
    pub(crate) value: &'static str,
    pub(crate) features: &'static str,
    pub(crate) all_features: &'static str,
    pub(crate) grace_until: &'static str,
    pub(crate) in_grace: &'static str,
    pub(crate) resets_left: &'static str,
    pub(crate) unlimited: &'static str,
    pub(crate) reset_limit_reached: &'static str,
    pub(crate) session_monitor: &'static str,
    pub(crate) sessions: &'static str,
    pub(crate) no_sessions: &'static str,
    pub(crate) user: &'static str,
    pub(crate) started: &'static str,
    pub(crate) last_heartbeat: &'static str,
    pub(crate) held_until: &'static str,
    pub(crate) borrowed: &'static str,
    pub(crate) release: &'static str,
    pub(crate) was_released: &'static str,
    pub(crate) session_not_found: &'static str,
    pub(crate) floating: &'static str,
    pub(crate) offline_activation: &'static str,
    pub(crate) offline_hint: &'static str,
    pub(crate) offline_request: &'static str,
    pub(crate) offline_activate: &'static str,
    pub(crate) offline_token_heading: &'static str,
    pub(crate) offline_token_hint: &'static str,
    pub(crate) offline_damaged: &'static str,
    pub(crate) offline_other_account: &'static str,
    pub(crate) offline_no_seat: &'static str,
    pub(crate) back: &'static str,
}

const RU: Text = Text {
    title: "Лицензии",
    login_heading: "Вход в личный кабинет",
    login_hint: "Введите регистрационный номер или активированный купон.",
    credential: "Регистрационный номер или купон",
    login: "Войти",
    logout: "Выйти",
    bad_credential: "Неверный регистрационный номер или купон.",
    rate_limited: "Слишком много попыток. Повторите позже.",
    forged: "Форма устарела или подделана. Обновите страницу и повторите.",
    number: "Регистрационный номер",
    licenses: "Лицензии",
    product: "Продукт",
    kind: "Тип",
    seats: "Занято мест",
    expires: "Действует до",
    perpetual: "бессрочно",
    trial: "пробная",
    subscription: "подписка",
    perpetual_kind: "бессрочная",
    bindings: "Привязки лицензий к хостам",
    no_bindings: "Нет привязанных хостов.",
    host: "Хост",
    os: "ОС",
    bound_since: "Привязан с",
    last_seen: "Последняя проверка",
    info: "Инфо",
    reset: "Сбросить",
    confirm_heading: "Сбросить привязку?",
    confirm_text: "Хост потеряет лицензию при следующей проверке, место освободится для другого хоста.",
    cancel: "Отмена",
    was_reset: "Привязка сброшена, место свободно.",
    not_found: "Привязка не найдена.",
    component: "Компонент",
    value: "Значение (хеш)",
    features: "Возможности",
    all_features: "—",
    grace_until: "Льготный период до",
    in_grace: "льготный период",
    resets_left: "Осталось сбросов (30 дней)",
    unlimited: "без ограничений",
    reset_limit_reached: "Лимит сбросов этой лицензии за 30 дней исчерпан. Повторите позже.",
    session_monitor: "Монитор сессий",
    sessions: "Сессии",
    no_sessions: "Нет активных сессий.",
    user: "Пользователь",
    started: "Начата",
    last_heartbeat: "Последний сигнал",
    held_until: "Место занято до",
    borrowed: "взята с собой",
    release: "Освободить",
    was_released: "Сессия завершена, место свободно.",
    session_not_found: "Сессия не найдена или уже завершена.",
    floating: "плавающая",
    offline_activation: "Офлайн-активация",
    offline_hint: "Вставьте запрос, который команда licet-agent offline-request напечатала на компьютере без доступа к серверу лицензий.",
    offline_request: "Запрос активации",
    offline_activate: "Активировать",
    offline_token_heading: "Лицензия для компьютера без сети",
    offline_token_hint: "Перенесите этот текст на тот компьютер и передайте его команде licet-agent offline-install.",
    offline_damaged: "Это не запрос активации, или он повреждён при переносе. Скопируйте его целиком.",
    offline_other_account: "Запрос создан с регистрационным номером другой учётной записи (1002).",
    offline_no_seat: "Свободных мест нет: сбросьте привязку другого хоста (1051).",
    back: "Назад",
};

const EN: Text = Text {
    title: "Licenses",
    login_heading: "Sign in to your account",
    login_hint: "Enter your registration number or a coupon you have redeemed.",
    credential: "Registration number or coupon",
    login: "Sign in",
    logout: "Sign out",
    bad_credential: "Wrong registration number or coupon.",
    rate_limited: "Too many attempts. Try again later.",
    forged: "The form expired or was forged. Reload the page and try again.",
    number: "Registration number",
    licenses: "Licenses",
    product: "Product",
    kind: "Kind",
    seats: "Seats used",
    expires: "Valid until",
    perpetual: "perpetual",
    trial: "trial",
    subscription: "subscription",
    perpetual_kind: "perpetual",
    bindings: "License bindings to hosts",
    no_bindings: "No hosts are bound.",
    host: "Host",
    os: "OS",
    bound_since: "Bound since",
    last_seen: "Last seen",
    info: "Info",
    reset: "Reset",
    confirm_heading: "Reset this binding?",
    confirm_text: "The host loses its license at its next check and the seat is free for another host.",
    cancel: "Cancel",
    was_reset: "The binding was reset; the seat is free.",
    not_found: "No such binding.",
    component: "Component",
    value: "Value (hash)",
    features: "Features",
    all_features: "—",
    grace_until: "Grace period until",
    in_grace: "grace period",
    resets_left: "Resets left (30 days)",
    unlimited: "unlimited",
    reset_limit_reached: "This license has used all its seat resets for 30 days. Try again later.",
    session_monitor: "Session monitor",
    sessions: "Sessions",
    no_sessions: "No live sessions.",
    user: "User",
    started: "Started",
    last_heartbeat: "Last heartbeat",
    held_until: "Seat held until",
    borrowed: "borrowed",
    release: "Release",
    was_released: "The session was released; the seat is free.",
    session_not_found: "No such live session: it has ended.",
    floating: "floating",
    offline_activation: "Offline activation",
    offline_hint: "Paste the request that licet-agent offline-request printed on the computer that cannot reach the license server.",
    offline_request: "Activation request",
    offline_activate: "Activate",
    offline_token_heading: "The license for the offline computer",
    offline_token_hint: "Take this text to that computer and give it to licet-agent offline-install.",
    offline_damaged: "This is not an activation request, or it was damaged on the way. Copy all of it.",
    offline_other_account: "The request was made with another account's registration number (1002).",
    offline_no_seat: "No seat is free: reset another host's binding first (1051).",
    back: "Back",
};

pub(crate) fn text(lang: Lang) -> &'static Text {
    match lang {
        Lang::Ru => &RU,
        Lang::En => &EN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_preferred_of_ours() {
        assert_eq!(from_accept_language("en-US,en;q=0.9,ru;q=0.8"), Lang::En);
        assert_eq!(from_accept_language("ru-RU,ru;q=0.9,en;q=0.8"), Lang::Ru);
        assert_eq!(from_accept_language("de;q=1.0, en;q=0.5"), Lang::En);
        assert_eq!(from_accept_language("fr"), Lang::Ru);
        assert_eq!(from_accept_language(""), Lang::Ru);
    }
}
