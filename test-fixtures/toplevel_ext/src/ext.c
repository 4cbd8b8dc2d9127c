/* ftfixture_toplevel._ext: one planted race, found by the test suite under
 * pytest-run-parallel (every thread of a test bumps the same counter). */
#include <Python.h>

static long hit_count = 0;

static PyObject *
toplevel_hit(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    hit_count++;  /* PLANTED global-counter: unsynchronised read-modify-write */
    return PyLong_FromLong(hit_count);
}

static PyObject *
toplevel_hits(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(hit_count);
}

static PyMethodDef module_functions[] = {
    {"hit", toplevel_hit, METH_NOARGS, "hit()\n--\n\nCount one hit; return the count."},
    {"hits", toplevel_hits, METH_NOARGS, "hits()\n--\n\nReturn the count."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ftfixture_toplevel._ext",
    .m_doc = "Fixture with a planted global-counter race.",
    .m_size = 0,
    .m_methods = module_functions,
    .m_slots = module_slots,
};

PyMODINIT_FUNC
PyInit__ext(void)
{
    return PyModuleDef_Init(&module_def);
}
