"""Write the bundled sample newsroom into samples/ (deterministic; run again to regenerate).

Every story, name and place here is invented for feedhub: neutral synthetic
text, no copied articles. Hosts are under example.org (reserved, RFC 2606).

    python tools/make_samples.py
"""
from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

OUT = Path(__file__).resolve().parent.parent / "samples"
BASE = datetime(2026, 11, 24, 18, 0, tzinfo=timezone.utc)
SITE = "https://news.example.org"
MEDIA = "https://media.example.org/images/2026/11"
rng = random.Random(20261125)

PLACES = {
    "europe": ["Aldenmoor", "Kestria", "Valdrenne"],
    "africa": ["Port Solace", "Umbala", "Sarenga"],
    "asia": ["Tavira", "Khoren", "Lumen Bay"],
    "latin-america": ["San Aurelio", "Costa Verdil", "Montebrisa"],
    "mena": ["Qasr Alnoor", "Wadi Sahel", "Marenvale"],
    "us-canada": ["Northbridge", "Cedar Falls", "Lake Orran"],
    "asia-pacific": ["Coral Reach", "Pelican Isles", "Mount Arlen"],
}
AUTHORS = [("Amina Rahal", "amina-rahal"), ("Daniel Okafor", "daniel-okafor"),
           ("Lucia Ferrer", "lucia-ferrer"), ("Tomasz Wren", "tomasz-wren"),
           ("Hana Saleh", "hana-saleh"), ("Grace Whitfield", "grace-whitfield"),
           ("Yusuf Demir", "yusuf-demir"), ("Marta Ilves", "marta-ilves")]
PHOTOGRAPHERS = ["Newsroom Photo Desk", "Meridian Wire", "Ines Calder", "Partner Pool"]

# (subsection, headline template, tags)
NEWS = [
    ("politics", "{place} parliament debates new rules for municipal elections", ["Elections", "Local government"]),
    ("politics", "Coalition talks in {place} enter their second week", ["Coalition talks"]),
    ("politics", "{place} opens public consultation on constitutional reform", ["Constitution"]),
    ("economy", "{place} central bank keeps interest rates unchanged", ["Interest rates", "Central banks"]),
    ("economy", "Small businesses in {place} report steady growth in exports", ["Trade", "Small business"]),
    ("economy", "New rail freight link expected to cut costs for {place} farmers", ["Trade", "Transport"]),
    ("sports", "{place} wins regional basketball final after overtime", ["Basketball"]),
    ("sports", "Marathon in {place} draws a record number of runners", ["Athletics"]),
    ("sports", "{place} football club names a new head coach", ["Football"]),
    ("arts-culture", "Contemporary art fair in {place} welcomes thousands of visitors", ["Art fairs"]),
    ("arts-culture", "{place} restores its century-old opera house", ["Architecture", "Music"]),
    ("health", "{place} launches a seasonal vaccination campaign", ["Vaccines", "Public health"]),
    ("health", "Hospitals in {place} test a shorter waiting-list system", ["Hospitals", "Public health"]),
    ("technology", "Students from {place} win an international robotics contest", ["Robotics", "Education"]),
    ("technology", "{place} expands free public wifi to rural libraries", ["Connectivity"]),
    ("environment", "{place} plants one million trees along its river banks", ["Reforestation", "Climate"]),
    ("environment", "Coral monitoring project in {place} reports early recovery", ["Oceans", "Climate"]),
    ("environment", "{place} opens its first large solar farm", ["Renewable energy", "Climate"]),
    ("miscellaneous", "Lost library book returned to {place} after 40 years", ["Libraries"]),
    ("miscellaneous", "{place} celebrates its annual lantern festival", ["Festivals"]),
]
ARTICLES = [
    ("opinion", "Why {place} should rethink how it funds its buses", ["Transport", "Local government"]),
    ("opinion", "The quiet success of community gardens in {place}", ["Urban farming"]),
    ("analysis", "What the latest trade figures say about {place}", ["Trade"]),
    ("analysis", "Five questions about the water plan for {place}", ["Water", "Climate"]),
    ("features", "A day with the night-shift nurses of {place}", ["Hospitals", "Public health"]),
    ("features", "The last ferry makers of {place}", ["Crafts", "Transport"]),
    ("blog", "Notes from the newsroom: covering elections in {place}", ["Elections"]),
]
VIDEOS = [
    ("explainers", "Explained: how {place} plans to store solar power", ["Renewable energy"]),
    ("newsfeed", "Watch: volunteers clear a beach in {place}", ["Oceans"]),
    ("video-features", "Inside the seed bank of {place}", ["Agriculture", "Climate"]),
    ("digital-series", "Street food stories: {place}", ["Food"]),
]
SENTENCES = [
    "Officials said the plan would be reviewed again in the spring.",
    "Residents who spoke at a public meeting asked for clearer timelines.",
    "The project is funded jointly by the regional authority and private partners.",
    "Organisers said attendance was higher than in any previous year.",
    "A report published on Monday set out three options for the next phase.",
    "Independent experts described the first results as encouraging but early.",
    "The announcement follows several weeks of consultation with local groups.",
    "Figures released by the statistics office show a gradual change since last year.",
    "Work is expected to begin early next year and to last about eighteen months.",
    "The committee will publish its full recommendations before the end of the month.",
    "Teachers, nurses and transport workers were among those consulted.",
    "Several neighbouring towns have said they are watching the pilot closely.",
]
WIRE = [
    "{place} port authority reports record container traffic",
    "Weather service issues heavy rain advisory for {place}",
    "{place} signs cultural exchange agreement with neighbouring towns",
    "Census shows population growth in {place} for a third year",
    "{place} airport opens a new terminal for regional flights",
    "Farmers in {place} expect an early grain harvest",
]
BREAKING = [
    "BREAKING: Power restored across {place} after overnight outage",
    "Mayor of {place}: \u201cThe bridge will reopen on Friday\u201d",
    "BREAKING: {place} election commission confirms turnout of 64 percent",
    "Health minister: \u201cNo new cases reported in {place} today\u201d",
    "BREAKING: Storm warning lifted for the coast of {place}",
]

AR_STORIES = [
    ("مجلس مدينة مارينفال يقر ميزانية جديدة للنقل العام", "politics", "mena", ["النقل العام"]),
    ("افتتاح مكتبة عامة جديدة في قصر النور", "arts-culture", "mena", ["المكتبات"]),
    ("باحثون يطورون طريقة أقل كلفة لتحلية المياه", "technology", "mena", ["المياه", "البحث العلمي"]),
    ("فريق وادي الساحل يفوز ببطولة كرة السلة الإقليمية", "sports", "mena", ["كرة السلة"]),
    ("مَعْرِضُ الكِتَابِ يَفْتَحُ أَبْوَابَهُ لِلزُّوَّارِ فِي دَوْرَتِهِ العَاشِرَة", "arts-culture", "mena", ["الكتب"]),
    ("انخفاض أسعار الخضروات في الأسواق المحلية بعد موسم حصاد وفير", "economy", "mena", ["الزراعة"]),
    ("إطلاق برنامج تدريبي للشباب في مجال البرمجة", "technology", "mena", ["التعليم"]),
    ("عاجل: انقطاع مؤقت للكهرباء في أحياء من مدينة مارينفال", "miscellaneous", "mena", ["الكهرباء"]),
    ("وزارة الصحة تطلق حملة تطعيم موسمية", "health", "mena", ["الصحة العامة"]),
    ("مهرجان للسينما المستقلة يختتم دورته العاشرة", "arts-culture", "europe", ["السينما"]),
    ("تعاون إقليمي لحماية الشعاب المرجانية في خليج لومن", "environment", "asia", ["المحيطات"]),
    ("ارتفاع عدد السياح القادمين إلى المنطقة بنسبة عشرين في المئة", "economy", "mena", ["السياحة"]),
    ("افتتاح جسر جديد يربط ضفتي النهر في تافيرا", "economy", "asia", ["النقل العام"]),
    ("طلاب يفوزون بمسابقة دولية للروبوتات", "technology", "africa", ["التعليم", "الروبوتات"]),
    ("خبراء يناقشون مستقبل الطاقة المتجددة في مؤتمر إقليمي", "environment", "mena", ["الطاقة المتجددة"]),
]
AR_SENTENCES = [
    "قال مسؤولون إن المشروع سيستفيد منه آلاف السكان خلال الأشهر المقبلة.",
    "وأضافوا أن العمل سيبدأ في مطلع العام المقبل ويستمر نحو عام ونصف.",
    "ويأتي هذا الإعلان بعد مشاورات استمرت عدة أسابيع مع ممثلي المجتمع المحلي.",
    "وأشار تقرير نُشر يوم الاثنين إلى ثلاثة خيارات للمرحلة التالية.",
    "ورحّب السكان بالخطوة وطالبوا بجدول زمني واضح للتنفيذ.",
]
AR_AUTHORS = ["سارة الحسيني", "عمر بن عيسى", "ليلى منصور"]

ES_STORIES = [
    ("El ayuntamiento de San Aurelio aprueba un nuevo plan de movilidad", "politics", "latin-america", ["Transporte"]),
    ("Investigadores de Costa Verdil presentan un sistema de riego que ahorra agua", "technology", "latin-america", ["Agua", "Agricultura"]),
    ("ÚLTIMA HORA: Cierre temporal del puerto de Montebrisa por niebla densa", "miscellaneous", "latin-america", ["Puertos"]),
    ("Montebrisa inaugura un festival de cine al aire libre", "arts-culture", "latin-america", ["Cine"]),
    ("La selección de Costa Verdil gana el torneo regional de voleibol", "sports", "latin-america", ["Voleibol"]),
    ("Nueva campaña de vacunación estacional en San Aurelio", "health", "latin-america", ["Salud pública"]),
    ("Exportaciones de café de Costa Verdil crecen un doce por ciento", "economy", "latin-america", ["Comercio", "Café"]),
    ("Voluntarios reforestan las laderas del volcán Arlen", "environment", "asia-pacific", ["Reforestación"]),
    ("Estudiantes de Montebrisa construyen un satélite educativo", "technology", "latin-america", ["Educación", "Espacio"]),
    ("Café Société: la cafetería que se convirtió en biblioteca de barrio", "miscellaneous", "europe", ["Bibliotecas", "Café Société"]),
    ("Valdrenne elige a su primera alcaldesa en un siglo", "politics", "europe", ["Elecciones"]),
    ("Las lluvias tempranas benefician a los productores de Sarenga", "economy", "africa", ["Agricultura"]),
]
ES_SENTENCES = [
    "Las autoridades indicaron que el plan se revisará de nuevo en primavera.",
    "Los vecinos pidieron plazos más claros durante una reunión pública.",
    "El proyecto se financia con fondos regionales y aportaciones privadas.",
    "Según los organizadores, la asistencia superó la de años anteriores.",
    "Los expertos calificaron los primeros resultados de alentadores.",
]
ES_AUTHORS = ["María José Arrieta", "Andrés Quintana", "Lucía Ferrer"]


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc822(dt: datetime) -> str:
    return format_datetime(dt, usegmt=True)


def slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())[:70]


def body(sentences: list[str], n: int) -> list[str]:
    picked = rng.sample(sentences, k=min(n, len(sentences)))
    return [" ".join(picked[i:i + 2]) for i in range(0, len(picked), 2)]


def region_place() -> tuple[str, str]:
    region = rng.choice(sorted(PLACES))
    return region, rng.choice(PLACES[region])


def x(s: str) -> str:
    return escape(s)


def story(i: int, templates: list[tuple[str, str, list[str]]], when: datetime) -> dict:
    sub, tmpl, tags = templates[i % len(templates)]
    region, place = region_place()
    title = tmpl.format(place=place)
    paras = body(SENTENCES, rng.randint(4, 8))
    lead = f"{title}. {paras[0]}"
    n_auth = 2 if i % 5 == 0 else 1
    authors = rng.sample(AUTHORS, k=n_auth)
    return {
        "title": title, "section": sub, "region": region, "place": place, "tags": tags,
        "paras": paras, "lead": lead, "authors": authors, "when": when,
        "updated": when + timedelta(minutes=35) if i % 4 == 0 else when,
        "link": f"{SITE}/{sub}/2026/11/{when.day}/{slug(title)}",
        "image": f"{MEDIA}/{slug(title)}.jpg",
        "caption": f"A scene from {place} earlier this week",
        "credit": rng.choice(PHOTOGRAPHERS),
    }


def html_body(s: dict) -> str:
    fig = (f'<figure><img src="{s["image"]}" alt="{x(s["caption"])}"/>'
           f'<figcaption>{x(s["caption"])} ({x(s["credit"])})</figcaption></figure>')
    return fig + "".join(f"<p>{x(p)}</p>" for p in s["paras"])


def write(name: str, text: str) -> None:
    (OUT / name).write_text(text, encoding="utf-8")


def cms_rss() -> int:
    items = []
    for i in range(40):
        s = story(i, NEWS, BASE - timedelta(hours=i * 2 + 1, minutes=i * 7 % 60, seconds=11))
        authors = "".join(f"<dc:creator>{x(a[0])}</dc:creator>" for a in s["authors"])
        cats = "".join(f"<category>{x(c)}</category>" for c in [s["section"], s["region"], *s["tags"]])
        guid = f"{SITE}/story/{1000 + i}"
        items.append(f"""    <item>
      <title>{x(s["title"])}</title>
      <link>{s["link"]}?utm_source=rss&amp;utm_medium=feed</link>
      <guid isPermaLink="false">{guid}</guid>
      <description>{x(s["lead"])}</description>
      <content:encoded><![CDATA[{html_body(s)}]]></content:encoded>
      {authors}
      {cats}
      <pubDate>{rfc822(s["when"])}</pubDate>
      <media:content url="{s["image"]}" medium="image" type="image/jpeg" width="1200" height="800">
        <media:description>{x(s["caption"])}</media:description>
        <media:credit>{x(s["credit"])}</media:credit>
      </media:content>
    </item>""")
    write("cms-news.rss", f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/"
     xmlns:atom="http://www.w3.org/2005/Atom">
  <channel>
    <title>Example Newsroom: News</title>
    <link>{SITE}/news</link>
    <description>News from the Example Newsroom CMS</description>
    <language>en</language>
    <atom:link href="{SITE}/cms/news.rss" rel="self" type="application/rss+xml"/>
    <lastBuildDate>{rfc822(BASE)}</lastBuildDate>
{chr(10).join(items)}
  </channel>
</rss>
""")
    return len(items)


def cms_atom() -> int:
    entries = []
    pool = ARTICLES + VIDEOS
    for i in range(25):
        s = story(i, pool, BASE - timedelta(hours=i * 3 + 2, seconds=23))
        authors = "".join(f"<author><name>{x(a[0])}</name><uri>{SITE}/author/{a[1]}</uri></author>"
                          for a in s["authors"])
        cats = "".join(f'<category term="{x(c)}" scheme="{SITE}/tags" label="{x(c)}"/>' for c in s["tags"])
        cats += f'<category term="{s["section"]}" scheme="{SITE}/sections"/>'
        cats += f'<category term="{s["region"]}" scheme="{SITE}/regions"/>'
        video = ""
        if s["section"] in {v[0] for v in VIDEOS}:
            video = (f'<link rel="enclosure" type="video/mp4" length="{rng.randint(2, 90) * 1_000_000}" '
                     f'href="https://media.example.org/video/2026/11/{slug(s["title"])}.mp4"/>')
        entries.append(f"""  <entry>
    <id>tag:news.example.org,2026:article-{2000 + i}</id>
    <title type="text">{x(s["title"])}</title>
    <link rel="alternate" type="text/html" href="{s["link"]}"/>
    {video}
    <published>{iso(s["when"])}</published>
    <updated>{iso(s["updated"])}</updated>
    {authors}
    {cats}
    <summary type="text">{x(s["lead"])}</summary>
    <content type="html">{x(html_body(s))}</content>
    <media:thumbnail url="{s["image"]}" width="640" height="427"/>
    <media:content url="{s["image"]}" medium="image" width="1200" height="800">
      <media:description>{x(s["caption"])} ({x(s["credit"])})</media:description>
    </media:content>
  </entry>""")
    write("cms-articles.atom", f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/" xml:lang="en">
  <id>tag:news.example.org,2026:cms-articles</id>
  <title>Example Newsroom: Articles and Videos</title>
  <link rel="self" href="{SITE}/cms/articles.atom"/>
  <link rel="alternate" href="{SITE}/articles"/>
  <updated>{iso(BASE)}</updated>
{chr(10).join(entries)}
</feed>
""")
    return len(entries)


def wire_rdf() -> int:
    items, seq = [], []
    for i in range(25):
        region, place = region_place()
        title = WIRE[i % len(WIRE)].format(place=place)
        when = BASE - timedelta(hours=i * 2, minutes=20 + i % 30, seconds=31)
        link = f"https://wire.example.org/meridian/2026/11/{3000 + i}"
        paras = body(SENTENCES, 3)
        seq.append(f'<rdf:li rdf:resource="{link}"/>')
        media = ""
        if i % 3 == 0:
            media = (f'<media:content url="https://wire.example.org/photos/{3000 + i}.jpg" medium="image">'
                     f"<media:description>Officials in {x(place)} speak to reporters (MW)</media:description>"
                     f"</media:content>")
        items.append(f"""  <item rdf:about="{link}">
    <title>{x(title)}</title>
    <link>{link}</link>
    <description>{x(" ".join(paras))}</description>
    <dc:creator>Meridian Wire staff</dc:creator>
    <dc:date>{iso(when)}</dc:date>
    <dc:subject>{region}</dc:subject>
    <dc:language>en</dc:language>
    {media}
  </item>""")
    write("wire-agency.rdf", f"""<?xml version="1.0" encoding="UTF-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
         xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/">
  <channel rdf:about="https://wire.example.org/meridian/feed.rdf">
    <title>Meridian Wire: World Service</title>
    <link>https://wire.example.org/meridian</link>
    <description>Short dispatches from the Meridian Wire agency</description>
    <dc:language>en</dc:language>
    <items><rdf:Seq>{"".join(seq)}</rdf:Seq></items>
  </channel>
{chr(10).join(items)}
</rdf:RDF>
""")
    return len(items)


def partner_json() -> int:
    items = []
    for i in range(20):
        s = story(i + 7, NEWS, BASE - timedelta(hours=i * 4 + 3, seconds=37))
        item = {
            "id": f"partner-{4000 + i}",
            "url": s["link"].replace(SITE, "https://partner.example.org"),
            "title": s["title"],
            "summary": s["lead"],
            "content_html": html_body(s),
            "image": s["image"].replace("media.example.org", "partner.example.org/media"),
            "date_published": iso(s["when"]),
            "date_modified": iso(s["updated"]),
            "authors": [{"name": a[0], "url": f"https://partner.example.org/people/{a[1]}"} for a in s["authors"]],
            "tags": [s["section"], s["region"], *s["tags"]],
            "language": "en",
            "_feedhub": {"image_caption": s["caption"], "image_credit": s["credit"]},
        }
        if i % 4 == 0:
            item["attachments"] = [{"url": f"https://partner.example.org/audio/{4000 + i}.mp3",
                                    "mime_type": "audio/mpeg", "title": "Listen to this story",
                                    "size_in_bytes": 2_400_000 + i, "duration_in_seconds": 180 + i}]
        items.append(item)
    feed = {"version": "https://jsonfeed.org/version/1.1", "title": "Harbour Post (partner outlet)",
            "home_page_url": "https://partner.example.org/",
            "feed_url": "https://partner.example.org/feed.json", "language": "en", "items": items}
    write("partner-outlet.json", json.dumps(feed, ensure_ascii=False, indent=2) + "\n")
    return len(items)


def breaking_rss() -> int:
    items = []
    for i in range(15):
        _, place = region_place()
        title = BREAKING[i % len(BREAKING)].format(place=place)
        when = BASE - timedelta(minutes=i * 11, seconds=i % 7)
        items.append(f"""    <item>
      <title>{x(title)}</title>
      <link>{SITE}/live/2026/11/ticker-{5000 + i}</link>
      <guid isPermaLink="true">{SITE}/live/2026/11/ticker-{5000 + i}</guid>
      <pubDate>{rfc822(when)}</pubDate>
    </item>""")
    write("breaking.rss", f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0">
  <channel>
    <title>Example Newsroom: Ticker</title>
    <link>{SITE}/live</link>
    <description>Breaking news ticker</description>
    <language>en</language>
    <ttl>1</ttl>
{chr(10).join(items)}
  </channel>
</rss>
""")
    return len(items)


def arabic_atom() -> int:
    entries = []
    for i, (title, section, region, tags) in enumerate(AR_STORIES):
        when = BASE - timedelta(hours=i * 3 + 1, seconds=41)
        paras = rng.sample(AR_SENTENCES, k=3)
        author = AR_AUTHORS[i % len(AR_AUTHORS)]
        image = f"{MEDIA}/ar-{6000 + i}.jpg"
        cats = "".join(f'<category term="{x(t)}"/>' for t in tags)
        content = (f'<figure><img src="{image}" alt="صورة من الموقع"/>'
                   f"<figcaption>صورة من موقع الحدث (وكالة ميريديان)</figcaption></figure>"
                   + "".join(f"<p>{x(p)}</p>" for p in paras))
        entries.append(f"""  <entry>
    <id>tag:news.example.org,2026:ar-{6000 + i}</id>
    <title>{x(title)}</title>
    <link rel="alternate" href="{SITE}/ar/{section}/2026/11/{6000 + i}"/>
    <published>{iso(when)}</published>
    <updated>{iso(when)}</updated>
    <author><name>{x(author)}</name></author>
    <category term="{section}"/><category term="{region}"/>{cats}
    <summary>{x(paras[0])}</summary>
    <content type="html">{x(content)}</content>
  </entry>""")
    write("arabic-edition.atom", f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="ar">
  <id>tag:news.example.org,2026:ar-edition</id>
  <title>الأخبار - النسخة العربية</title>
  <link rel="self" href="{SITE}/ar/cms.atom"/>
  <link rel="alternate" href="{SITE}/ar"/>
  <updated>{iso(BASE)}</updated>
{chr(10).join(entries)}
</feed>
""")
    return len(entries)


def spanish_rss() -> int:
    items = []
    for i, (title, section, region, tags) in enumerate(ES_STORIES):
        when = BASE - timedelta(hours=i * 5 + 2, seconds=43)
        paras = rng.sample(ES_SENTENCES, k=3)
        link = f"{SITE}/es/{section}/2026/11/{7000 + i}"
        cats = "".join(f"<category>{x(c)}</category>" for c in [section, region, *tags])
        items.append(f"""    <item>
      <title>{x(title)}</title>
      <link>{link}</link>
      <guid>{link}</guid>
      <description>{x(" ".join(paras))}</description>
      <dc:creator>{x(ES_AUTHORS[i % len(ES_AUTHORS)])}</dc:creator>
      {cats}
      <pubDate>{rfc822(when)}</pubDate>
      <enclosure url="{MEDIA}/es-{7000 + i}.jpg" length="{180_000 + i * 1000}" type="image/jpeg"/>
    </item>""")
    write("spanish-edition.rss", f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel>
    <title>Noticias de ejemplo - edición en español</title>
    <link>{SITE}/es</link>
    <description>Noticias de la redacción de ejemplo</description>
    <language>es</language>
{chr(10).join(items)}
  </channel>
</rss>
""")
    return len(items)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    counts = {f.__name__: f() for f in (cms_rss, cms_atom, wire_rdf, partner_json, breaking_rss,
                                         arabic_atom, spanish_rss)}
    print(counts, "total", sum(counts.values()))


if __name__ == "__main__":
    main()
