"""The sample neighbourhood's text: listings, notices and library items.

Plain data, no behaviour: :mod:`portal.sample` turns it into signed entries
through the Hub. Believable rather than lorem ipsum, so that a rehearsal
(``make run``) and the accessibility checks see real-looking pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The community a demo node belongs to.
COMMUNITY = "Elm Street & Riverside"


@dataclass(frozen=True)
class SampleAccount:
    """A demo organiser account (the password is generated at first seed)."""

    name: str
    display_name: str
    role: str


@dataclass(frozen=True)
class SampleListing:
    """One listing as an organiser would post it."""

    category: str
    title: str
    body: str
    price: str = ""
    contact: str = ""
    pinned: bool = False


@dataclass(frozen=True)
class SampleNotice:
    """One notice; ``days`` is how long it stays up (``None``: until removed)."""

    title: str
    body: str
    urgent: bool = False
    pinned: bool = False
    days: int | None = 14


@dataclass(frozen=True)
class SampleItem:
    """One library item; ``maker`` names the function of :mod:`.files` that makes it."""

    title: str
    filename: str
    maker: str
    author: str = ""
    language: str = "en"
    description: str = ""
    collection: str = ""
    text: tuple[str, ...] = field(default_factory=tuple)


ACCOUNTS: tuple[SampleAccount, ...] = (
    SampleAccount("amira", "Amira (residents' association)", "admin"),
    SampleAccount("ben", "Ben (community centre)", "organiser"),
    SampleAccount("tomas", "Tomás (volunteer technician)", "technician"),
)

LISTINGS: tuple[SampleListing, ...] = (
    SampleListing("for-sale", "Child's bicycle, 16-inch wheels",
                  "Blue, with stabilisers. Outgrown but in good order; new inner tubes in May.",
                  "£25", "Flat 3, 14 Elm Street"),
    SampleListing("for-sale", "Chest freezer, 200 litres",
                  "Works well, moving house. You carry it out (ground floor).",
                  "£60", "ring the bell at 22 Mill Lane"),
    SampleListing("for-sale", "Hand-knitted winter hats",
                  "Adult and child sizes, many colours. All money goes to the food bank.",
                  "£5 each", "Saturday market, stall 4"),
    SampleListing("for-sale", "Second-hand school uniforms",
                  "Riverside Primary jumpers and polo shirts, ages 5-11, washed and sorted.",
                  "£1 an item", "community centre, Tuesdays 4-6 pm"),
    SampleListing("free", "Sofa bed, free to collect",
                  "Grey fabric, folds out to a double. Must go by Sunday.",
                  "", "Flat 12, Riverside Court"),
    SampleListing("free", "Tomato and courgette seedlings",
                  "Too many this year! Take a tray, bring the tray back.",
                  "", "front garden of 9 Elm Street"),
    SampleListing("free", "Moving boxes, about thirty",
                  "Flat-packed, sturdy, some bubble wrap too.", "", "ask at the corner shop"),
    SampleListing("free", "Children's books, bag of twenty",
                  "Picture books and early readers in English and Arabic.",
                  "", "leave a note at 5 Canal Row"),
    SampleListing("wanted", "Ladder to borrow for a weekend",
                  "To clear the gutters; a 3-metre ladder would do. Happy to swap for cake.",
                  "", "Mr Okafor, 31 Mill Lane"),
    SampleListing("wanted", "Volunteer drivers for the Thursday lunch club",
                  "Two hours a week, bringing older neighbours to the centre and back.",
                  "", "Ben at the community centre"),
    SampleListing("wanted", "Old mobile phones for the mesh project",
                  "Working or not: we reuse batteries and chargers for the repair café.",
                  "", "drop box in the library"),
    SampleListing("services", "Bike repairs at the repair café",
                  "Punctures, brakes and gears fixed while you wait; you learn how too.",
                  "donation", "first Saturday of the month, 10 am-1 pm", pinned=True),
    SampleListing("services", "Maths and science tutoring",
                  "Retired teacher offers help for GCSE and A-level, one hour a week.",
                  "£10 an hour, free for families on benefits", "Mrs Haddad, 8 Canal Row"),
    SampleListing("services", "Sewing alterations and repairs",
                  "Hems, zips, school uniforms. Usually ready in three days.",
                  "from £4", "Flat 1, 40 Elm Street"),
    SampleListing("services", "Translation help: Arabic, Somali, Polish",
                  "Volunteers help with letters and forms, Wednesdays at the library.",
                  "", "library, Wednesdays 2-5 pm"),
    SampleListing("jobs", "Café assistant, part-time",
                  "Riverside Café needs help on weekday mornings, 15 hours a week.",
                  "£11.44 an hour", "ask for Layla at the café"),
    SampleListing("jobs", "After-school club helper",
                  "Paid helper for 3-6 pm, term time. DBS check arranged by the club.",
                  "£12 an hour", "community centre office"),
    SampleListing("jobs", "Gardener for the estate's shared gardens",
                  "Four hours a week, spring to autumn; tools provided.",
                  "£13 an hour", "residents' association"),
    SampleListing("events", "Street party on the 21st",
                  "Elm Street closes to cars from noon. Bring a dish to share, chairs welcome.",
                  "", "residents' association", pinned=True),
    SampleListing("events", "Film night: family film in the park",
                  "Friday at dusk, bring a blanket. Free popcorn while it lasts.",
                  "free", "community centre"),
    SampleListing("events", "Mesh network open evening",
                  "See how the neighbourhood's own Wi-Fi works and help put up a node.",
                  "free", "library meeting room, Thursday 7 pm"),
    SampleListing("events", "Toddler music group",
                  "Songs and rhymes for under-fives with their grown-ups, Monday mornings.",
                  "£1", "St Anne's hall"),
)

NOTICES: tuple[SampleNotice, ...] = (
    SampleNotice("Water off on Mill Lane, Tuesday 9 am-3 pm",
                 "The water company is replacing a main. **Fill a kettle and some bottles** "
                 "beforehand. Bottled water at the community centre for anyone who needs it.",
                 urgent=True, pinned=True, days=3),
    SampleNotice("Bin collection moves to Wednesdays",
                 "From next month, general waste and recycling are collected on Wednesdays.",
                 pinned=True, days=30),
    SampleNotice("Community centre opening hours",
                 "Monday to Friday 9 am-8 pm, Saturday 10 am-4 pm. Closed on Sundays.",
                 days=None),
    SampleNotice("Food bank collection point",
                 "Tins, pasta, rice and toiletries can be left at the library until Friday.",
                 days=10),
    SampleNotice("How to join the mesh",
                 "Connect to the open Wi-Fi called *Elm Street & Riverside* and open any web "
                 "page: this hub appears. Nothing to install, no account needed.",
                 days=None),
)

_WATER = ("Keep at least two litres of drinking water per person in the house.",
          "When the water comes back it may look cloudy: run the cold kitchen tap for a few "
          "minutes until it is clear.",
          "Neighbours who cannot carry water can ask the community centre for a delivery.")
_GARDEN = ("The shared gardens behind Riverside Court are open to every resident.",
           "Sign up for a raised bed at the library; tools are kept in the green shed.",
           "Please compost green waste only, and water early in the morning or late in the "
           "evening.")
_BIKE = ("Take the wheel off and remove the tyre with two levers.",
         "Find the hole by pumping the tube up and listening, or dipping it in water.",
         "Roughen the area, apply the glue, wait a minute, then press on the patch.")
_TENANTS = ("Your landlord must give you at least 24 hours' notice before visiting.",
            "Repairs to the structure, heating and hot water are the landlord's job.",
            "The residents' association can go with you to meetings with the housing office.")
_MESH = ("Each node is a small computer with a Wi-Fi radio on a roof or a window sill.",
         "Nodes talk to each other and carry the hub's pages to every corner of the "
         "neighbourhood, even when the internet is down.",
         "Volunteers look after the nodes; anyone can learn at the open evenings.")

LIBRARY: tuple[SampleItem, ...] = (
    SampleItem("When the water is off: a household guide", "water-guide.pdf", "pdf",
               "Residents' association", description="What to do before, during and after "
               "a planned water outage.", collection="Practical guides", text=_WATER),
    SampleItem("Stories from Riverside", "stories-from-riverside.epub", "epub",
               "Riverside writing group", description="Short memories of the neighbourhood, "
               "written by its residents.", collection="Local history",
               text=("The mill was still working when I came here in 1962.",
                     "Every summer the canal froze over in our stories, never in real life.")),
    SampleItem("Community garden handbook", "garden-handbook.pdf", "pdf",
               "Shared gardens group", description="Rules and tips for the shared gardens.",
               collection="Practical guides", text=_GARDEN),
    SampleItem("Fixing a bike puncture", "bike-puncture.pdf", "pdf", "Repair café",
               description="Step-by-step guide from the repair café.",
               collection="Repair café", text=_BIKE),
    SampleItem("Tenants' rights in brief", "tenants-rights.pdf", "pdf",
               "Residents' association", description="Plain-language summary; not legal "
               "advice.", collection="Practical guides", text=_TENANTS),
    SampleItem("Recipes from our kitchens", "recipes.epub", "epub", "Lunch club",
               description="Twelve dishes shared at the Thursday lunch club.",
               collection="Local history",
               text=("Lentil soup: one onion, two carrots, a cup of red lentils.",
                     "Flatbread: flour, water, salt and a hot dry pan.")),
    SampleItem("Community radio jingle", "radio-jingle.wav", "wav", "Riverside radio",
               description="A short tune for the community radio hour.",
               collection="Sound", text=("523.25", "659.25", "783.99", "1046.5")),
    SampleItem("Fire alarm test tone", "alarm-test-tone.wav", "wav", "Housing office",
               description="The tone you will hear during the monthly alarm test.",
               collection="Sound", text=("880", "660", "880", "660")),
    SampleItem("How the mesh works", "how-the-mesh-works.pdf", "pdf", "Mesh volunteers",
               description="An introduction to the neighbourhood's own network.",
               collection="Mesh network", text=_MESH),
    SampleItem("Poster: join the mesh", "join-the-mesh.png", "png", "Mesh volunteers",
               description="Print it and put it up in your window.",
               collection="Mesh network", text=("Join the mesh: Elm Street & Riverside",)),
)
